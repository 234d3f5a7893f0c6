//! The connection of an HTTP `Date` source: resolve, connect (through a
//! proxy, TLS), send one timed `HEAD`, and keep the HTTP/1.1 connection for the
//! next request and, in `serve`, for the next measurement ([`Kept`]).
//!
//! A kept connection is reused only after the server's certificate has been
//! checked again at the new measurement's time, and a request that finds it
//! closed (or gets the `408` a server sends as it closes an idle connection)
//! is sent again on a new connection: the answer and its timing always come
//! from one request and its own response, never from a handshake.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::HandshakeKind;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{build_request, host_header, keeps_alive, read_date, Answer, MAX_HEAD_BYTES};
use crate::core::sample::SourceError;
use crate::os::clock::{Clock, Stamp, UnixNanos};
use crate::proto::source::HttpTarget;
use crate::proto::tls;

/// What an HTTP `Date` source keeps between measurements (`serve`): its
/// TLS client (and so its TLS sessions) and its open connection, with
/// counters of the work done.
#[derive(Default)]
pub struct Kept {
    pub(super) client: Option<tls::Client>,
    pub(super) link: Option<Link>,
    /// What the connections cost so far.
    pub stats: ConnectionStats,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("open", &self.link.is_some())
            .field("stats", &self.stats)
            .finish()
    }
}

/// Connections made, handshakes and reuses of one HTTP `Date` source.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionStats {
    /// TCP connections opened (to the server, or to its proxy).
    pub connections: u64,
    /// TLS handshakes with a certificate (full).
    pub full_handshakes: u64,
    /// TLS handshakes that resumed an earlier session.
    pub resumed_handshakes: u64,
    /// Measurements that began on a connection kept from an earlier one.
    pub reused: u64,
    /// Kept connections found closed by the server at the first request
    /// (and replaced at once).
    pub stale: u64,
}

/// A live HTTP/1.1 connection; dropping it stops the task that drives it.
pub(super) struct Link {
    sender: SendRequest<Empty<Bytes>>,
    reusable: bool,
    /// The server's certificate chain (TLS), to check again when the
    /// connection or its session serves a later measurement.
    chain: Vec<CertificateDer<'static>>,
    _driver: AbortOnDrop,
}

impl Link {
    /// Whether another request may go on it.
    pub(super) fn alive(&self) -> bool {
        self.reusable && !self.sender.is_closed()
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why a request got no usable answer.
pub(super) enum Failure {
    /// The connection failed (or was timed out by the server): another
    /// connection may do.
    Transport(SourceError),
    /// The server (or proxy) answered, with something unusable.
    Answer(SourceError),
}

impl From<Failure> for SourceError {
    fn from(f: Failure) -> SourceError {
        match f {
            Failure::Transport(e) | Failure::Answer(e) => e,
        }
    }
}

/// One measurement's connection state.
pub(super) struct Session<'a> {
    pub(super) target: &'a HttpTarget,
    pub(super) clock: &'a dyn Clock,
    pub(super) anchor: Stamp,
    pub(super) tls: Option<&'a tls::Client>,
    pub(super) addrs: Vec<SocketAddr>,
    pub(super) link: Option<Link>,
    pub(super) stats: &'a mut ConnectionStats,
    /// What the set-up waits for through a proxy, for a timeout's message.
    pub(super) waiting_on: std::sync::Mutex<Option<String>>,
}

impl Session<'_> {
    /// Local time now: the anchor carried forward on the monotonic clock.
    pub(super) fn now(&self) -> UnixNanos {
        self.anchor.real_at(self.clock.monotonic())
    }

    /// Whether a connection kept from an earlier measurement is open.
    pub(super) fn has_kept(&self) -> bool {
        self.link.as_ref().is_some_and(Link::alive)
    }

    /// The first answer on the kept connection, after checking the server's
    /// certificate again at this measurement's time. `Err(None)`: the
    /// connection turned out closed (or hung) and was dropped; a new one is
    /// the caller's to open.
    pub(super) async fn ask_kept(
        &mut self,
        bound: Duration,
    ) -> Result<Answer, Option<SourceError>> {
        if let (Some(tls), Some(link)) = (self.tls, self.link.as_ref()) {
            tls.reverify(&link.chain, &self.server_name().map_err(Some)?)
                .map_err(Some)?;
        }
        match tokio::time::timeout(bound, self.ask_on_link()).await {
            Ok(Ok(answer)) => {
                self.stats.reused += 1;
                Ok(answer)
            }
            Ok(Err(Failure::Answer(e))) => Err(Some(e)),
            Ok(Err(Failure::Transport(e))) => {
                tracing::debug!(host = %self.target.host, error = %e, "kept connection closed by the server: reconnecting");
                self.stats.stale += 1;
                self.link = None;
                Err(None)
            }
            Err(_) => {
                tracing::debug!(host = %self.target.host, "kept connection did not answer: reconnecting");
                self.stats.stale += 1;
                self.link = None;
                Err(None)
            }
        }
    }

    /// Resolves, connects and takes the first answer. Through a proxy only
    /// the proxy's name is resolved: the proxy resolves the server's.
    pub(super) async fn start(&mut self) -> Result<Answer, SourceError> {
        self.link = None;
        if let Some(tls) = self.tls {
            tls.forget_checks();
        }
        self.resolve().await?;
        self.prepare().await?;
        self.ask().await
    }

    async fn resolve(&mut self) -> Result<(), SourceError> {
        self.addrs = match &self.target.proxy {
            Some(proxy) => {
                proxy.usable()?;
                crate::proto::source::resolve(&proxy.host, proxy.port)
                    .await
                    .map_err(|e| SourceError::Resolve(format!("proxy {proxy}: {e}")))?
            }
            None => crate::proto::source::resolve(&self.target.host, self.target.port).await?,
        };
        Ok(())
    }

    /// The error for a set-up that ran out of time: through a proxy, what it
    /// did not do.
    pub(super) fn timed_out(&self, timeout: Duration) -> SourceError {
        let waiting = self.waiting_on.lock().ok().and_then(|w| w.clone());
        match waiting {
            Some(what) => SourceError::Io(format!(
                "{what} within {}",
                crate::core::duration::human_duration(timeout.as_secs_f64())
            )),
            None => SourceError::Timeout(timeout),
        }
    }

    fn wait_on(&self, what: Option<String>) {
        if let Ok(mut w) = self.waiting_on.lock() {
            *w = what;
        }
    }

    /// Makes sure a usable connection is open.
    pub(super) async fn prepare(&mut self) -> Result<(), SourceError> {
        if !self.has_kept() {
            self.link = None;
            if self.addrs.is_empty() {
                self.resolve().await?;
            }
            self.link = Some(self.connect().await?);
        }
        Ok(())
    }

    pub(super) async fn sleep_until(&self, at: UnixNanos) {
        let wait = at - self.now();
        if wait > 0 {
            tokio::time::sleep(Duration::from_nanos(wait as u64)).await;
        }
    }

    /// Sends one request and times it.
    pub(super) async fn ask(&mut self) -> Result<Answer, SourceError> {
        self.ask_on_link().await.map_err(SourceError::from)
    }

    async fn ask_on_link(&mut self) -> Result<Answer, Failure> {
        let mut request = build_request(self.target).map_err(Failure::Answer)?;
        if let Some(proxy) = self.target.proxy.as_ref().filter(|_| !self.target.tls) {
            through_proxy(&mut request, self.target, proxy).map_err(Failure::Answer)?;
        }
        let Some(link) = self.link.as_mut() else {
            return Err(Failure::Transport(SourceError::Io(
                "no open connection".into(),
            )));
        };
        let transport = |e| match response_error(e) {
            e @ SourceError::Io(_) => Failure::Transport(e),
            e => Failure::Answer(e),
        };
        link.sender.ready().await.map_err(transport)?;
        // Earliest possible send time and latest possible receive time on the
        // realtime scale, whatever the anchor's bracket: the interval stays true.
        let sent = self.anchor.earliest_real_at(self.clock.monotonic());
        let response = link.sender.send_request(request).await;
        let received = self.anchor.latest_real_at(self.clock.monotonic());
        let response = response.map_err(transport)?;
        link.reusable = keeps_alive(&response);
        // A server closing an idle connection may send 408 first, written
        // before our request arrived: its Date may predate `sent`.
        if response.status() == StatusCode::REQUEST_TIMEOUT {
            link.reusable = false;
            return Err(Failure::Transport(SourceError::Io(
                "the server timed the connection out (408 Request Timeout)".into(),
            )));
        }
        if let Some(proxy) = self.target.proxy.as_ref().filter(|_| !self.target.tls) {
            // Through a proxy, a refusal or a gateway error is the proxy's
            // own answer, its Date the proxy's clock.
            let status = response.status();
            if matches!(status.as_u16(), 403 | 407) || status.is_server_error() {
                return Err(Failure::Answer(SourceError::Io(
                    crate::proto::proxy::refusal(
                        proxy,
                        &host_header(self.target),
                        status.as_u16(),
                        status.canonical_reason().unwrap_or(""),
                    )
                    .to_string(),
                )));
            }
        }
        let date = read_date(response.headers()).map_err(Failure::Answer)?;
        tracing::trace!(status = %response.status(), date, sent, received, "HTTP Date answer");
        Ok(Answer {
            date,
            sent,
            received,
        })
    }

    async fn connect(&mut self) -> Result<Link, SourceError> {
        let mut last = None;
        let proxy = self.target.proxy.as_ref();
        for addr in self.addrs.clone() {
            if let Some(proxy) = proxy {
                self.wait_on(Some(format!(
                    "proxy {proxy} ({addr}) did not accept a connection"
                )));
            }
            match TcpStream::connect(addr).await {
                Ok(mut tcp) => {
                    self.stats.connections += 1;
                    // One small write per request: do not let Nagle hold it back.
                    let _ = tcp.set_nodelay(true);
                    if let Some(proxy) = proxy.filter(|_| self.target.tls) {
                        let (host, port) = (&self.target.host, self.target.port);
                        self.wait_on(Some(format!(
                            "proxy {proxy} did not answer CONNECT to {}",
                            host_header(self.target)
                        )));
                        crate::proto::proxy::connect(&mut tcp, proxy, host, port).await?;
                    }
                    self.wait_on(None);
                    return self.handshake(tcp).await;
                }
                Err(e) => {
                    last = Some(match proxy {
                        Some(proxy) => format!("cannot connect to proxy {proxy} ({addr}): {e}"),
                        None => format!("cannot connect to {addr}: {e}"),
                    })
                }
            }
        }
        self.wait_on(None);
        Err(SourceError::Io(
            last.unwrap_or_else(|| "no address to connect to".into()),
        ))
    }

    fn server_name(&self) -> Result<ServerName<'static>, SourceError> {
        ServerName::try_from(self.target.host.clone()).map_err(|e| {
            SourceError::Tls(format!(
                "`{}` cannot be a TLS server name: {e}",
                self.target.host
            ))
        })
    }

    async fn handshake(&mut self, tcp: TcpStream) -> Result<Link, SourceError> {
        let Some(client) = self.tls else {
            return http_handshake(tcp, Vec::new()).await;
        };
        let name = self.server_name()?;
        let stream = TlsConnector::from(client.config())
            .connect(name.clone(), tcp)
            .await
            .map_err(|e| tls::handshake_error(&e))?;
        let (_, conn) = stream.get_ref();
        let chain = conn.peer_certificates().unwrap_or_default().to_vec();
        if conn.handshake_kind() == Some(HandshakeKind::Resumed) {
            // No certificate was shown: check the session's at this
            // measurement's time, as a full handshake would have.
            self.stats.resumed_handshakes += 1;
            client.reverify(&chain, &name)?;
        } else {
            self.stats.full_handshakes += 1;
        }
        http_handshake(stream, chain).await
    }
}

async fn http_handshake<S>(io: S, chain: Vec<CertificateDer<'static>>) -> Result<Link, SourceError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::Builder::new()
        .max_buf_size(MAX_HEAD_BYTES)
        .max_header_size(MAX_HEAD_BYTES)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| SourceError::Io(format!("HTTP connection set-up failed: {e}")))?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::trace!(error = %e, "HTTP connection ended");
        }
    });
    Ok(Link {
        sender,
        reusable: true,
        chain,
        _driver: AbortOnDrop(driver),
    })
}

/// A plain `http://` request sent to a proxy: the absolute URI (as curl
/// sends it) and the proxy's credentials, if any.
fn through_proxy(
    request: &mut Request<Empty<Bytes>>,
    target: &HttpTarget,
    proxy: &crate::proto::proxy::Proxy,
) -> Result<(), SourceError> {
    let absolute = format!("http://{}{}", host_header(target), target.path);
    *request.uri_mut() = absolute
        .parse()
        .map_err(|e| SourceError::Http(format!("cannot build a request for `{absolute}`: {e}")))?;
    if let Some(auth) = proxy.authorization() {
        let mut value = HeaderValue::from_str(auth)
            .map_err(|_| SourceError::Io(format!("proxy {proxy}: unusable credentials")))?;
        value.set_sensitive(true);
        request
            .headers_mut()
            .insert(hyper::header::PROXY_AUTHORIZATION, value);
    }
    Ok(())
}

fn response_error(e: hyper::Error) -> SourceError {
    let detail = match std::error::Error::source(&e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    };
    if e.is_parse_too_large() {
        SourceError::Http(format!(
            "response head too large (over {} KiB or too many headers)",
            MAX_HEAD_BYTES / 1024
        ))
    } else if e.is_parse() {
        SourceError::Http(format!("malformed HTTP response: {detail}"))
    } else {
        SourceError::Io(format!("HTTP request failed: {detail}"))
    }
}
