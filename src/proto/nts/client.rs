//! Queries one NTS server: the key exchange over TLS 1.3 (ALPN `ntske/1`, the
//! same roots and date-exempted handshake as `https://` sources), then an
//! authenticated NTP exchange over UDP. Thin I/O around [`super::ke`],
//! [`super::ext`] and [`crate::proto::ntp::packet`].
//!
//! The key exchange's keys and cookies live in an [`NtsState`] that the caller
//! keeps per source between rounds: each request spends one cookie and asks
//! for enough placeholders to be back at eight, so `serve` repeats the key
//! exchange only when the cookies run out, on an NTS NAK, or after a failure.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tracing::debug;

use crate::core::sample::{Outcome, QuerySettings, Sample, SourceError, Trust};
use crate::os::clock::{Clock, NANOS_PER_SEC};
use crate::proto::ntp::packet::{self, KissCode, NtpTimestamp, Packet, Rejection};
use crate::proto::nts::ext::{self, Keys, MAX_COOKIES, NONCE_LEN, UID_LEN};
use crate::proto::nts::ke;
use crate::proto::tls::{self, DateExemption};
use crate::proto::udp::Exchange;

/// The kiss code of an NTS NAK: the server cannot use our cookie.
pub const NAK: KissCode = KissCode(*b"NTSN");

/// Receive buffer: larger than any UDP datagram (65,507 bytes of payload over
/// IPv4, 65,527 over IPv6), so no reply is cut short. RFC 8915 sets no limit
/// on a cookie's size, and a reply carrying eight large cookies (the header,
/// the echoed fields, the authenticator and 8 × 1 KiB is about 8.5 KiB)
/// would not fit the 4 KiB this once was and would fail verification.
const RECV_BUF: usize = 64 * 1024;

/// What one key exchange established, kept between rounds.
#[derive(Debug)]
pub struct NtsState {
    keys: Keys,
    cookies: Vec<Vec<u8>>,
    ntp_host: String,
    ntp_port: u16,
    exemption: Option<DateExemption>,
}

impl NtsState {
    /// Cookies left.
    pub fn cookies(&self) -> usize {
        self.cookies.len()
    }
}

/// Counters of one source's NTS work, for logs and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NtsStats {
    /// Key exchanges made.
    pub key_exchanges: u64,
}

/// Queries the NTS server `host` (key exchange on TCP `ke_port`), reusing
/// `state` from earlier rounds where it still holds cookies.
pub async fn query(
    host: &str,
    ke_port: u16,
    settings: &QuerySettings,
    clock: &dyn Clock,
    state: &mut Option<NtsState>,
    stats: &mut NtsStats,
) -> Outcome {
    let mut fresh = false;
    for _ in 0..2 {
        if state.as_ref().is_none_or(|s| s.cookies.is_empty()) {
            stats.key_exchanges += 1;
            match key_exchange(host, ke_port, settings, clock).await {
                Ok(s) => {
                    *state = Some(s);
                    fresh = true;
                }
                Err(e) => {
                    *state = None;
                    return Outcome::from_result(Err(e));
                }
            }
        }
        let Some(st) = state.as_mut() else {
            break;
        };
        match exchange(st, settings, clock).await {
            Ok(sample) => {
                let result = vouch(st, sample, clock);
                // A date exemption describes one handshake: keys from it serve
                // this round only, so once the clock is corrected the next key
                // exchange is validated normally (chrony likewise confines
                // `nocerttimecheck` to key exchanges while unsynchronised).
                if result.is_err() || st.exemption.is_some() {
                    *state = None;
                }
                return Outcome::from_result(result);
            }
            Err(Failure::Nak) => {
                *state = None;
                if fresh {
                    // A genuine server does not refuse cookies it has just
                    // issued; a NAK carries no authenticator, so anyone on the
                    // UDP path can send one. Counted as a failed verification,
                    // so that under `mix` a forged NAK cannot hand the vote to
                    // unauthenticated sources.
                    return Outcome::from_result(Err(SourceError::Verification(
                        "NTS NAK: the server refused the cookie of a fresh key exchange (a forged NAK on the path, or a server whose NTP and key-exchange sides do not share keys)".into(),
                    )));
                }
                debug!(host, "NTS NAK; repeating the key exchange");
            }
            Err(Failure::Kiss { code, poll }) => {
                let retry_after = (code == KissCode::RATE).then(|| packet::rate_backoff(poll));
                return Outcome {
                    result: Err(SourceError::KissOfDeath(code.to_string())),
                    retry_after,
                };
            }
            Err(Failure::Other(e)) => {
                if matches!(e, SourceError::Verification(_)) {
                    *state = None;
                }
                return Outcome::from_result(Err(e));
            }
        }
    }
    Outcome::from_result(Err(SourceError::Invalid(
        "NTS: no usable key exchange".into(),
    )))
}

/// With a date-exempted key exchange, the measurement counts only if the time
/// it gives lies inside the certificate's validity.
fn vouch(st: &NtsState, sample: Sample, clock: &dyn Clock) -> Result<Sample, SourceError> {
    let Some(x) = &st.exemption else {
        return Ok(sample);
    };
    let local = clock.realtime() as f64 / NANOS_PER_SEC as f64;
    let server = (local + sample.offset).floor() as i64;
    if x.valid_at(server) {
        Ok(sample.with_certificate_gap(x.at_least, x.local_behind))
    } else {
        Err(SourceError::Tls(format!(
            "the NTS-KE server's certificate is {} by the server's own time too: the server serves a bad certificate; this says nothing about the local clock",
            if x.local_behind { "not yet valid" } else { "expired" }
        )))
    }
}

async fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, SourceError> {
    tokio::time::timeout(timeout, crate::proto::source::resolve(host, port))
        .await
        .map_err(|_| SourceError::Resolve(format!("{host}: no answer within the timeout")))?
}

/// The key exchange: TLS 1.3 with ALPN `ntske/1`, our records, the server's
/// records up to End of Message, and the keys from the TLS exporter.
async fn key_exchange(
    host: &str,
    port: u16,
    settings: &QuerySettings,
    clock: &dyn Clock,
) -> Result<NtsState, SourceError> {
    let anchor = clock.stamp();
    let provider = tls::provider();
    let (verifier, slot) = tls::verifier(settings, anchor.real, provider.clone())?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| SourceError::Tls(format!("no usable protocol version: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![ke::ALPN.to_vec()];
    let connector = TlsConnector::from(Arc::new(config));
    let work = async {
        let addrs = crate::proto::source::resolve(host, port).await?;
        let mut last = None;
        let mut tcp = None;
        for addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(t) => {
                    // The request follows the handshake's last flight: no Nagle
                    // wait for the server's (delayed) ACK.
                    let _ = t.set_nodelay(true);
                    tcp = Some(t);
                    break;
                }
                Err(e) => last = Some(format!("cannot connect to NTS-KE {addr}: {e}")),
            }
        }
        let tcp =
            tcp.ok_or_else(|| SourceError::Io(last.unwrap_or_else(|| "no address".into())))?;
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| SourceError::Tls(format!("`{host}` cannot be a TLS server name: {e}")))?;
        let mut stream =
            connector
                .connect(name, tcp)
                .await
                .map_err(|e| match tls::handshake_error(&e) {
                    SourceError::Tls(m) if m.contains("NoApplicationProtocol") => SourceError::Tls(
                        format!("the NTS-KE server does not speak ALPN ntske/1 ({m})"),
                    ),
                    SourceError::Tls(m) => {
                        SourceError::Tls(format!("NTS-KE handshake (TLS 1.3 only): {m}"))
                    }
                    other => other,
                })?;
        {
            let (_, conn) = stream.get_ref();
            if conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
                return Err(SourceError::Tls(
                    "the NTS-KE server did not use TLS 1.3".into(),
                ));
            }
            if conn.alpn_protocol() != Some(ke::ALPN) {
                return Err(SourceError::Tls(
                    "the NTS-KE server did not agree on ALPN ntske/1".into(),
                ));
            }
        }
        stream
            .write_all(&ke::request())
            .await
            .map_err(|e| SourceError::Io(format!("NTS-KE request: {e}")))?;
        stream
            .flush()
            .await
            .map_err(|e| SourceError::Io(format!("NTS-KE request: {e}")))?;
        let mut buf = Vec::with_capacity(2048);
        let mut chunk = [0u8; 2048];
        let response = loop {
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|e| SourceError::Io(format!("NTS-KE response: {e}")))?;
            if n == 0 {
                return Err(SourceError::Invalid(
                    "the NTS-KE server closed the connection before End of Message".into(),
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
            match ke::parse_response(&buf) {
                Ok(Some(r)) => break r,
                Ok(None) => continue,
                Err(e) => return Err(SourceError::Invalid(e.to_string())),
            }
        };
        let (_, conn) = stream.get_ref();
        let export = |s2c| {
            conn.export_keying_material(
                [0u8; ke::KEY_LEN],
                ke::EXPORTER_LABEL,
                Some(&ke::key_context(s2c)),
            )
            .map_err(|e| SourceError::Tls(format!("TLS exporter: {e}")))
        };
        let keys = Keys {
            c2s: export(false)?,
            s2c: export(true)?,
        };
        let _ = tokio::time::timeout(Duration::from_millis(100), stream.shutdown()).await;
        Ok(NtsState {
            keys,
            cookies: response.cookies,
            ntp_host: response.server.unwrap_or_else(|| host.to_string()),
            ntp_port: response.port.unwrap_or(123),
            exemption: None,
        })
    };
    let mut state = tokio::time::timeout(settings.timeout, work)
        .await
        .map_err(|_| SourceError::Timeout(settings.timeout))??;
    state.exemption = tls::take_exemption(&slot);
    debug!(host, cookies = state.cookies.len(), ntp = %state.ntp_host, port = state.ntp_port, "NTS key exchange");
    Ok(state)
}

/// Why one exchange gave no sample.
enum Failure {
    /// An NTS NAK that echoed our identifier.
    Nak,
    /// An authenticated Kiss-o'-Death.
    Kiss { code: KissCode, poll: i8 },
    /// Anything else.
    Other(SourceError),
}

impl From<SourceError> for Failure {
    fn from(e: SourceError) -> Self {
        Failure::Other(e)
    }
}

fn random<const N: usize>() -> Result<[u8; N], SourceError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| SourceError::Io(format!("random bytes: {e}")))?;
    Ok(out)
}

/// One authenticated request/reply exchange, spending one cookie.
async fn exchange(
    st: &mut NtsState,
    settings: &QuerySettings,
    clock: &dyn Clock,
) -> Result<Sample, Failure> {
    let timeout = settings.timeout;
    let deadline = Instant::now() + timeout;
    let addrs = resolve(&st.ntp_host, st.ntp_port, timeout).await?;
    let addr = addrs[0];
    let Some(cookie) = st.cookies.pop() else {
        return Err(SourceError::Invalid("NTS: no cookie left".into()).into());
    };
    let placeholders = MAX_COOKIES.saturating_sub(st.cookies.len() + 1);
    let nonce = loop {
        let n = u64::from_be_bytes(random::<8>()?);
        if n != 0 {
            break NtpTimestamp(n);
        }
    };
    let uid: [u8; UID_LEN] = random()?;
    let aead_nonce: [u8; NONCE_LEN] = random()?;
    let request = ext::build_request(
        &packet::build_request(nonce),
        &uid,
        &cookie,
        placeholders,
        &aead_nonce,
        &st.keys.c2s,
    )
    .map_err(|e| SourceError::Invalid(e.to_string()))?;
    let mut udp = Exchange::open(addr, "NTS", clock)?;
    let t1 = NtpTimestamp::from_unix_nanos(udp.send(&[&request])?);
    let mut buf = vec![0u8; RECV_BUF];
    let mut last_invalid: Option<SourceError> = None;
    loop {
        let Some((len, t4)) = udp.recv(&mut buf, deadline).await? else {
            return Err(last_invalid.unwrap_or(SourceError::Timeout(timeout)).into());
        };
        let t4 = NtpTimestamp::from_unix_nanos(t4);
        let data = &buf[..len.min(RECV_BUF)];
        let reply = match Packet::parse(data) {
            Ok(p) => p,
            Err(r) => {
                last_invalid = Some(SourceError::Invalid(r.to_string()));
                continue;
            }
        };
        let authentic = ext::check_reply(data, &uid, &st.keys.s2c);
        match reply.validate(nonce) {
            Err(Rejection::KissOfDeath(code)) if code == NAK && ext::echoes_uid(data, &uid) => {
                return Err(Failure::Nak)
            }
            // Other kisses are obeyed only when authenticated.
            Err(Rejection::KissOfDeath(code)) if authentic.is_ok() => {
                return Err(Failure::Kiss {
                    code,
                    poll: reply.poll,
                })
            }
            Err(r) => {
                debug!(%addr, reason = %r, "ignoring invalid NTS reply");
                last_invalid = Some(SourceError::Invalid(r.to_string()));
                continue;
            }
            Ok(()) => {}
        }
        match authentic {
            Ok(cookies) => {
                for c in cookies {
                    if st.cookies.len() < MAX_COOKIES {
                        st.cookies.push(c);
                    }
                }
                let mut sample = packet::sample(t1, &reply, t4);
                sample.trust = Trust::Authenticated;
                return Ok(sample);
            }
            Err(e) => {
                debug!(%addr, reason = %e, "ignoring NTS reply that does not authenticate");
                last_invalid = Some(SourceError::Verification(e.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::nts::ext::{AUTHENTICATOR, COOKIE, UNIQUE_IDENTIFIER};
    use std::net::Ipv4Addr;
    use tokio::net::UdpSocket;

    const KEYS: Keys = Keys {
        c2s: [1; 32],
        s2c: [2; 32],
    };

    /// An authenticated server reply to `request` carrying `cookies` fresh
    /// cookies of `cookie_len` bytes, sealed under [`KEYS`]'s S2C key.
    fn reply(request: &[u8], cookies: usize, cookie_len: usize, clock: &dyn Clock) -> Vec<u8> {
        let now = NtpTimestamp::from_unix_nanos(clock.realtime());
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&request[40..48]);
        let header = Packet {
            leap: 0,
            version: 4,
            mode: 4,
            stratum: 2,
            poll: 0,
            precision: -20,
            root_delay: 0.001,
            root_dispersion: 0.001,
            reference_id: [127, 0, 0, 1],
            reference: now,
            origin: NtpTimestamp::from_be_bytes(nonce),
            receive: now,
            transmit: now,
        };
        let uid = ext::fields(request, packet::PACKET_LEN)
            .unwrap()
            .into_iter()
            .find(|f| f.kind == UNIQUE_IDENTIFIER)
            .unwrap()
            .body
            .to_vec();
        let mut out = header.to_bytes().to_vec();
        ext::push_field(&mut out, UNIQUE_IDENTIFIER, &uid).unwrap();
        let mut plain = Vec::new();
        for i in 0..cookies {
            ext::push_field(&mut plain, COOKIE, &vec![i as u8 + 1; cookie_len]).unwrap();
        }
        let aead_nonce = [9u8; NONCE_LEN];
        let ct = ext::seal_reply(&KEYS.s2c, &out, &aead_nonce, &plain).unwrap();
        let mut body = Vec::new();
        body.extend_from_slice(&(NONCE_LEN as u16).to_be_bytes());
        body.extend_from_slice(&(ct.len() as u16).to_be_bytes());
        body.extend_from_slice(&aead_nonce);
        body.extend_from_slice(&ct);
        ext::push_field(&mut out, AUTHENTICATOR, &body).unwrap();
        out
    }

    /// One exchange with a loopback server that answers with `cookies` ×
    /// `cookie_len`-byte cookies; the reply's size and the outcome.
    async fn exchange_with(
        cookies: usize,
        cookie_len: usize,
    ) -> (usize, Result<Sample, Failure>, usize) {
        let server = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = server.local_addr().unwrap().port();
        let answer = tokio::spawn(async move {
            let clock = crate::os::clock::SystemClock;
            let mut buf = vec![0u8; 2048];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            let bytes = reply(&buf[..n], cookies, cookie_len, &clock);
            server.send_to(&bytes, from).await.unwrap();
            bytes.len()
        });
        let mut st = NtsState {
            keys: KEYS,
            cookies: vec![vec![7; 100]; MAX_COOKIES],
            ntp_host: "127.0.0.1".into(),
            ntp_port: port,
            exemption: None,
        };
        let settings = QuerySettings {
            timeout: Duration::from_secs(2),
            ..QuerySettings::default()
        };
        let result = exchange(&mut st, &settings, &crate::os::clock::SystemClock).await;
        (answer.await.unwrap(), result, st.cookies.len())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_reply_with_eight_large_cookies_verifies() {
        // 8 × 1 KiB cookies, and 8 × 7.9 KiB: near the largest UDP datagram.
        for cookie_len in [1024, 7_900] {
            let (size, result, cookies) = exchange_with(MAX_COOKIES, cookie_len).await;
            assert!(size > 4096, "{size}");
            match result {
                Ok(sample) => assert!(sample.authenticated()),
                Err(Failure::Other(e)) => panic!("a {size}-byte reply: {e}"),
                Err(_) => panic!("a {size}-byte reply was not accepted"),
            }
            assert_eq!(cookies, MAX_COOKIES, "the spent cookie is replaced");
        }
    }

    #[test]
    fn the_query_future_is_send() {
        fn is_send<T: Send>(_: &T) {}
        let s = QuerySettings::default();
        let mut state = None;
        let mut stats = NtsStats::default();
        let clock = crate::os::clock::SystemClock;
        let f = query("127.0.0.1", 1, &s, &clock, &mut state, &mut stats);
        is_send(&f);
    }
}
