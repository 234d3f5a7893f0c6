//! Connection management of `serve`: the accept loop, one task per
//! connection handed to hyper, a cap on how many are open (with a descriptor
//! reserve for the measurement), the per-connection timeouts, and the drain
//! on shutdown. One task per connection, the cap and hyper's header read
//! timeout keep slow or idle clients from delaying a probe.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::serve::lock;
use crate::serve::routes::respond;
use crate::serve::state::State;

/// Most connections open at once (fewer under a low descriptor limit, see
/// [`connection_cap`]); beyond it the oldest idle one is reclaimed.
const MAX_CONNECTIONS: usize = 1024;
/// How long a connection may take to send a request head, and may sit idle between requests.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest life of one connection; a probe needs milliseconds, a scraper reconnects.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Read buffer per connection, which bounds a request head (hyper's minimum is 8 KiB).
const MAX_BUF_SIZE: usize = 8192;
/// How long in-flight requests may take to finish after SIGTERM.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Which connections are open, from where, and since when each has been idle:
/// the budget that keeps a flood from starving a probe. Pure bookkeeping (the
/// I/O layer passes the times in); `H` is how to tell a connection to close.
///
/// A new connection is admitted if its client address holds less than its
/// share and the total is under the cap. Otherwise the oldest idle connection
/// (of that address when it is over its share, of any address when the cap is
/// reached) is reclaimed to make room, so a new probe always gets in while
/// anything idle is open; only when every connection is in use is the new one
/// refused. "Idle" is any connection not inside a request: a kept-alive one
/// between requests, or one that has not completed a request head.
#[derive(Debug)]
struct ConnTable<H> {
    cap: usize,
    share: usize,
    next: u64,
    /// id → (client address, idle since, handle).
    open: HashMap<u64, (IpAddr, tokio::time::Instant, H)>,
    /// Per client address: (idle since, id) in order, oldest first.
    idle: HashMap<IpAddr, BTreeSet<(tokio::time::Instant, u64)>>,
}

/// The decision on a new connection.
#[derive(Debug, PartialEq)]
enum Admit<H> {
    /// Serve it under this id; close the reclaimed connection, if any, first.
    Accept {
        /// The new connection's id.
        id: u64,
        /// The handle of the connection reclaimed to make room.
        reclaimed: Option<H>,
    },
    /// Every connection that could make room is in use: close the new one.
    Refuse,
}

impl<H: Clone> ConnTable<H> {
    /// A table for at most `cap` connections, `share` of them per client address.
    fn new(cap: usize, share: usize) -> Self {
        ConnTable {
            cap: cap.max(1),
            share: share.clamp(1, cap.max(1)),
            next: 0,
            open: HashMap::new(),
            idle: HashMap::new(),
        }
    }

    /// Connections open from `ip`.
    fn count(&self, ip: IpAddr) -> usize {
        self.idle.get(&ip).map_or(0, BTreeSet::len)
    }

    /// Decides on a connection from `ip` accepted at `now`.
    fn admit(&mut self, ip: IpAddr, now: tokio::time::Instant, handle: H) -> Admit<H> {
        // Every open connection is in `idle` (see `request`), so counts come from there.
        let victim = if self.count(ip) >= self.share {
            self.oldest(Some(ip))
        } else if self.open.len() >= self.cap {
            self.oldest(None)
        } else {
            None
        };
        let over = self.count(ip) >= self.share || self.open.len() >= self.cap;
        if over && victim.is_none() {
            return Admit::Refuse;
        }
        let reclaimed = victim.and_then(|v| self.close(v));
        let id = self.next;
        self.next += 1;
        self.open.insert(id, (ip, now, handle));
        self.idle.entry(ip).or_default().insert((now, id));
        Admit::Accept { id, reclaimed }
    }

    /// The oldest idle connection of `ip`, or of anyone.
    fn oldest(&self, ip: Option<IpAddr>) -> Option<u64> {
        match ip {
            Some(ip) => self.idle.get(&ip)?.first().map(|&(_, id)| id),
            None => self
                .idle
                .values()
                .filter_map(|set| set.first())
                .min()
                .map(|&(_, id)| id),
        }
    }

    /// A request arrived on `id` at `now`: it is answered at once, so the
    /// connection counts as idle from now (the newest, last to be reclaimed).
    fn request(&mut self, id: u64, now: tokio::time::Instant) {
        if let Some((ip, since, _)) = self.open.get_mut(&id) {
            if let Some(set) = self.idle.get_mut(ip) {
                set.remove(&(*since, id));
                set.insert((now, id));
            }
            *since = now;
        }
    }

    /// Forgets `id` (closed, or reclaimed); its handle if it was open.
    fn close(&mut self, id: u64) -> Option<H> {
        let (ip, since, handle) = self.open.remove(&id)?;
        if let Some(set) = self.idle.get_mut(&ip) {
            set.remove(&(since, id));
            if set.is_empty() {
                self.idle.remove(&ip);
            }
        }
        Some(handle)
    }
}

/// Descriptors kept free for everything but the listener's connections: the
/// measurement's sockets (one per source, DNS, TLS), the runtime, stdio.
const FD_RESERVE: u64 = 128;

/// The connection cap for a descriptor limit: [`MAX_CONNECTIONS`], or the
/// limit less [`FD_RESERVE`] if that is smaller (at least 16).
pub(crate) fn connection_cap(nofile: Option<u64>) -> usize {
    let fit = nofile.map_or(MAX_CONNECTIONS as u64, |n| n.saturating_sub(FD_RESERVE));
    (fit.min(MAX_CONNECTIONS as u64) as usize).max(16)
}

/// How long a new connection may take to complete its first request head; a
/// probe sends it at once. Slow or silent clients are closed after this.
const FIRST_HEAD_TIMEOUT: Duration = Duration::from_secs(2);

/// Fewest seconds between two warnings about failed `accept`s.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` and answers them until `shutdown`
/// resolves; then stops accepting, lets requests in flight finish (at most
/// [`DRAIN_TIMEOUT`]) and returns.
///
/// At most `cap` connections are served (see [`connection_cap`]), half of
/// them per client address, with the oldest idle one reclaimed for a new
/// one (see [`ConnTable`]).
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    cap: usize,
    shutdown: impl Future<Output = ()>,
) {
    let table = Arc::new(Mutex::new(ConnTable::<Arc<Notify>>::new(cap, cap / 2)));
    // Shutdown, told to every connection task; each holds a receiver until it
    // ends, so the channel's closing is the drain's end (hyper-util's
    // `GracefulShutdown` works the same way, but would take over the
    // connection's own `graceful_shutdown`, which the lifetime needs too).
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_BUF_SIZE)
        .keep_alive(true);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    let mut refused: u64 = 0;
    let mut accept_errors: u64 = 0;
    let mut accept_warned: Option<tokio::time::Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, mostly: pause rather than spin, and
                    // say so at most every ACCEPT_WARN_EVERY.
                    accept_errors += 1;
                    let now = tokio::time::Instant::now();
                    if accept_warned.is_none_or(|t| now - t >= ACCEPT_WARN_EVERY) {
                        tracing::warn!(error = %e, failures = accept_errors, "accept failed");
                        accept_warned = Some(now);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let close = Arc::new(Notify::new());
        let now = tokio::time::Instant::now();
        let admitted = lock(&table).admit(peer.ip(), now, close.clone());
        let id = match admitted {
            Admit::Accept { id, reclaimed } => {
                if let Some(victim) = reclaimed {
                    victim.notify_one();
                    // Let it close before the next accept: on this one thread a
                    // burst of accepts would otherwise hold reclaimed descriptors
                    // open and eat into the reserve.
                    tokio::task::yield_now().await;
                }
                id
            }
            Admit::Refuse => {
                refused += 1;
                // One warning per 1024 refusals keeps a flood from flooding the log too.
                if refused % 1024 == 1 {
                    tracing::warn!(%peer, refused, limit = cap, "every connection is in use; closing new ones");
                }
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let builder = builder.clone();
        let mut stop = stop_rx.clone();
        let table = table.clone();
        tokio::spawn(async move {
            let slot = Slot { id, table, close };
            connection(stream, peer, state, &builder, &mut stop, &slot).await;
            lock(&slot.table).close(id);
            // `stop` is dropped here, last: the drain waits for that.
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(stop_rx);
    // Closed once the last connection task has ended and dropped its receiver.
    let drained = stop_tx.closed();
    if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
}

/// A connection's place in the table.
struct Slot {
    /// Its id in the table.
    id: u64,
    /// The table.
    table: Arc<Mutex<ConnTable<Arc<Notify>>>>,
    /// Notified when the connection is reclaimed for a new one.
    close: Arc<Notify>,
}

/// Serves one connection until the client closes it, it idles out, it does
/// not complete a first request head within [`FIRST_HEAD_TIMEOUT`], it is
/// reclaimed, it reaches [`CONNECTION_LIFETIME`], or shutdown begins.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    builder: &hyper::server::conn::http1::Builder,
    stop: &mut watch::Receiver<bool>,
    slot: &Slot,
) {
    let born = tokio::time::Instant::now();
    let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let service = {
        let started = started.clone();
        let table = slot.table.clone();
        let id = slot.id;
        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            started.store(true, Ordering::Relaxed);
            lock(&table).request(id, tokio::time::Instant::now());
            let accept = req.headers().get(hyper::header::ACCEPT);
            let accept = accept.and_then(|v| v.to_str().ok());
            let mut r = respond(req.method(), req.uri().path(), accept, &state);
            if born.elapsed() >= CONNECTION_LIFETIME {
                // Past its lifetime a busy connection is closed after this answer,
                // cleanly: dropping it between requests would race the client's next one.
                r.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            async move { Ok::<_, Infallible>(r) }
        })
    };
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    // Backstop for a connection that never completes a request after its lifetime;
    // an idle one is closed sooner by the header read timeout.
    let lifetime = tokio::time::sleep(CONNECTION_LIFETIME + HEADER_READ_TIMEOUT);
    tokio::pin!(lifetime);
    let first_head = async {
        tokio::time::sleep(FIRST_HEAD_TIMEOUT).await;
        if started.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(first_head);
    let ended = tokio::select! {
        r = conn.as_mut() => Some(r),
        // Reclaimed or silent: nothing is in flight (an answer is written as
        // soon as its request is read), so close at once.
        () = slot.close.notified() => return,
        () = &mut first_head => return,
        _ = stop.wait_for(|s| *s) => None,
        () = &mut lifetime => None,
    };
    let result = match ended {
        Some(r) => r,
        None => {
            // Answer the request in flight (if any), then close; an idle
            // connection closes at once.
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(DRAIN_TIMEOUT, conn.as_mut())
                .await
                .unwrap_or(Ok(()))
        }
    };
    if let Err(e) = result {
        // Timeouts and resets by clients are routine; nothing to act on.
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_drain_ends_as_soon_as_the_last_connection_has_closed() {
        static CLOCK: crate::os::clock::SystemClock = crate::os::clock::SystemClock;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let sources = crate::proto::source::Source::parse_list("ntp://a").unwrap();
            let state = Arc::new(State::new(
                &crate::core::report::Judging::default(),
                crate::serve::metrics::Metrics::new(&sources, 150.0),
                crate::core::holdover::MaxDrift::DEFAULT,
                false,
                Duration::from_secs(60),
                &CLOCK,
            ));
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(serve(listener, state, 16, async {
                let _ = stopped.await;
            }));
            // A kept-alive connection after its answer, and one that sent nothing.
            let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
            kept.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut answer = [0; 12];
            kept.read_exact(&mut answer).await.unwrap();
            assert_eq!(&answer, b"HTTP/1.1 200");
            let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            let began = tokio::time::Instant::now();
            stop.send(()).unwrap();
            server.await.unwrap();
            // Both close at once, so the drain ends long before its timeout.
            let took = began.elapsed();
            assert!(took < DRAIN_TIMEOUT / 4, "{took:?}");
            let mut rest = Vec::new();
            kept.read_to_end(&mut rest).await.unwrap();
            assert_eq!(silent.read(&mut [0; 1]).await.unwrap(), 0, "closed");
        });
    }

    #[test]
    fn the_table_reclaims_the_oldest_idle_connection_and_shares_by_address() {
        let t0 = tokio::time::Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        // cap 4, share 2 per address
        let mut t = ConnTable::new(4, 2);
        fn id(admit: Admit<&'static str>) -> (u64, Option<&'static str>) {
            match admit {
                Admit::Accept { id, reclaimed } => (id, reclaimed),
                Admit::Refuse => panic!("refused"),
            }
        }
        assert_eq!(id(t.admit(a, at(0), "a0")), (0, None));
        assert_eq!(id(t.admit(a, at(1), "a1")), (1, None));
        // `a` is at its share: its oldest idle one makes room.
        assert_eq!(id(t.admit(a, at(2), "a2")), (2, Some("a0")));
        // A request makes a0's successor the newest; a2 is now the oldest of `a`.
        t.request(1, at(3));
        assert_eq!(id(t.admit(a, at(4), "a3")), (3, Some("a2")));
        assert_eq!(id(t.admit(b, at(5), "b0")), (4, None));
        assert_eq!(id(t.admit(b, at(6), "b1")), (5, None));
        assert_eq!(t.open.len(), 4);
        // At the cap, a third address takes the oldest idle of anyone (a1 at 3 ms).
        assert_eq!(
            id(t.admit([127, 0, 0, 4].into(), at(7), "c0")),
            (6, Some("a1"))
        );
        assert_eq!(t.open.len(), 4);
        assert_eq!(t.close(6), Some("c0"));
        assert_eq!(t.close(6), None);
        assert_eq!(t.open.len(), 3);
        for i in [3, 4, 5] {
            t.close(i);
        }
        assert!(t.open.is_empty() && t.idle.is_empty());
    }

    #[test]
    fn the_cap_keeps_a_descriptor_reserve() {
        assert_eq!(connection_cap(None), MAX_CONNECTIONS);
        assert_eq!(connection_cap(Some(20_000)), MAX_CONNECTIONS);
        assert_eq!(connection_cap(Some(1024)), 1024 - FD_RESERVE as usize);
        assert_eq!(connection_cap(Some(100)), 16);
    }
}
