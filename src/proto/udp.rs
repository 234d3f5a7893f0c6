//! One timed request/reply exchange over UDP, shared by NTP, NTS and
//! Roughtime.
//!
//! The socket is connected, so the kernel drops datagrams from any other
//! address and reports an ICMP port unreachable as `ECONNREFUSED` at once.
//! It is registered with the runtime before anything is sent, on a second
//! descriptor of the same socket, so that the send is one syscall right after
//! T1 is read and after it this thread only waits: work done here while the
//! reply is on its way would widen the round trip, and could hold up a server
//! on this machine that shares the core.
//!
//! Timing: realtime is read once per exchange, bracketed by monotonic reads
//! ([`crate::os::clock::Stamp`]). T1 is the earliest realtime the monotonic
//! read just before the first send can be. T4 is the kernel's receive stamp
//! (`SO_TIMESTAMPNS`, as chronyd and ntpd-rs take it) where it fits: taken on
//! the kernel's realtime clock as the datagram arrives, carried onto the
//! anchor's scale by a second bracketed read after the receive
//! ([`crate::os::clock::Stamp::kernel_event_at`]), and used only when it lies
//! between the send and that read and realtime did not step against monotonic
//! meanwhile. Otherwise (or with a clock that is not the kernel's) T4 is the
//! latest realtime the monotonic read after the receive can be. Either way a
//! preemption only widens the round trip, and with it the bound, and a
//! wall-clock step during a query cannot distort it.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::core::sample::SourceError;
use crate::os::clock::{Clock, Stamp, UnixNanos};

/// One exchange's socket, connected to one server.
pub(crate) struct Exchange<'c> {
    /// The descriptor the requests go out on.
    out: std::net::UdpSocket,
    /// The same socket, registered with the runtime: replies come in here.
    sock: UdpSocket,
    addr: SocketAddr,
    /// The protocol's name for errors ("NTP", "NTS", "Roughtime").
    server: &'static str,
    clock: &'c dyn Clock,
    kernel_stamps: bool,
    /// The anchor and the monotonic read just before the first send.
    sent: Option<(Stamp, Duration)>,
}

impl<'c> Exchange<'c> {
    /// Binds a fresh socket, connects it to `addr`, asks for the kernel's
    /// receive stamps (when `clock` is the kernel's) and registers it.
    pub(crate) fn open(
        addr: SocketAddr,
        server: &'static str,
        clock: &'c dyn Clock,
    ) -> Result<Self, SourceError> {
        let local: SocketAddr = if addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let setup = |e: std::io::Error| SourceError::Io(format!("socket set-up: {e}"));
        let out = std::net::UdpSocket::bind(local)
            .map_err(|e| SourceError::Io(format!("bind {local}: {e}")))?;
        out.connect(addr)
            .map_err(|e| SourceError::socket("connect to", addr, server, &e))?;
        out.set_nonblocking(true).map_err(setup)?;
        let kernel_stamps = clock.is_kernel_realtime()
            && crate::os::sys::enable_receive_stamps(out.as_raw_fd()).is_ok();
        let sock = UdpSocket::from_std(out.try_clone().map_err(setup)?).map_err(setup)?;
        Ok(Exchange {
            out,
            sock,
            addr,
            server,
            clock,
            kernel_stamps,
            sent: None,
        })
    }

    /// Sends `requests` one after another at once and returns T1: the
    /// earliest realtime of the first send (on this exchange's anchor).
    pub(crate) fn send(&mut self, requests: &[&[u8]]) -> Result<UnixNanos, SourceError> {
        let anchor = self.clock.stamp();
        // T1 from the monotonic read just before the send: never later than it.
        let before = self.clock.monotonic();
        for request in requests {
            self.out
                .send(request)
                .map_err(|e| SourceError::socket("send to", self.addr, self.server, &e))?;
        }
        self.sent = Some((anchor, before));
        Ok(anchor.earliest_real_at(before))
    }

    /// The next datagram from the server, into `buf` (cut to its length):
    /// its length and T4, never earlier than its arrival. `Ok(None)` when
    /// `deadline` passes first.
    pub(crate) async fn recv(
        &self,
        buf: &mut [u8],
        deadline: Instant,
    ) -> Result<Option<(usize, UnixNanos)>, SourceError> {
        let Some((anchor, sent)) = self.sent else {
            return Err(SourceError::Io("receive before any send".into()));
        };
        let fd = self.sock.as_raw_fd();
        let received = tokio::time::timeout_at(
            deadline,
            // ERROR too, as tokio's own `recv`: an ICMP port unreachable
            // (ECONNREFUSED) raises only EPOLLERR.
            self.sock
                .async_io(Interest::READABLE | Interest::ERROR, || {
                    crate::os::sys::recv_stamped(fd, buf)
                }),
        )
        .await;
        // T4 first, before anything else: never earlier than the arrival.
        let after = self.clock.monotonic();
        let (len, kernel) = match received {
            Err(_) => return Ok(None),
            Ok(Err(e)) => {
                return Err(SourceError::socket(
                    "receive from",
                    self.addr,
                    self.server,
                    &e,
                ))
            }
            Ok(Ok(got)) => got,
        };
        let at = kernel
            .filter(|_| self.kernel_stamps)
            .and_then(|k| anchor.kernel_event_at(k, &self.clock.stamp(), sent))
            .map_or(after, |k| k.min(after));
        Ok(Some((len.min(buf.len()), anchor.latest_real_at(at))))
    }

    /// A datagram already queued behind the last one, without waiting.
    pub(crate) fn try_recv(&self, buf: &mut [u8]) -> Option<usize> {
        self.sock.try_recv(buf).ok()
    }
}
