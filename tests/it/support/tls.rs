//! TLS and clock fakes for trust tests: a test CA (rcgen) that issues leaf
//! certificates valid for a chosen span around *now*, an HTTPS `Date` server
//! with its own clock, and a plain NTP server with its own clock (a forger).
//! Threads and `std` only, bound to 127.0.0.1; each stops when dropped.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

const DAY: i64 = 86_400;

/// A test certificate authority.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA certificate, PEM: what `SKEWGUARD_CA_FILE` (or chrony's
    /// `ntstrustedcerts`) trusts.
    pub pem: String,
}

/// A leaf certificate and its key.
pub struct Leaf {
    /// DER chain (leaf only; the CA is the trust anchor).
    pub chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// PKCS#8 key, DER.
    pub key_der: Vec<u8>,
    /// Leaf certificate, PEM.
    pub cert_pem: String,
    /// Key, PEM.
    pub key_pem: String,
    /// Validity, Unix seconds.
    pub not_before: i64,
    /// Validity, Unix seconds.
    pub not_after: i64,
}

impl TestCa {
    /// A fresh CA, valid from 1971 to 2200.
    pub fn new() -> TestCa {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "skewguard test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.not_before = rcgen::date_time_ymd(1971, 1, 1);
        params.not_after = rcgen::date_time_ymd(2200, 1, 1);
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A leaf for `localhost` and `127.0.0.1` valid from `from_days` to
    /// `to_days` days relative to now (negative: in the past).
    pub fn leaf_days(&self, from_days: i64, to_days: i64) -> Leaf {
        let now = now_secs() as i64;
        self.leaf(now + from_days * DAY, now + to_days * DAY)
    }

    /// A leaf for `localhost` and `127.0.0.1` valid between two Unix times.
    pub fn leaf(&self, not_before: i64, not_after: i64) -> Leaf {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("leaf params");
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before = epoch + Duration::from_secs(not_before.max(0) as u64);
        params.not_after = epoch + Duration::from_secs(not_after.max(0) as u64);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            chain: vec![cert.der().clone()],
            key_der: key.serialize_der(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_before,
            not_after,
        }
    }

    /// A self-signed certificate for `localhost`/`127.0.0.1` that is itself a
    /// CA (what rustls refuses as an end entity: `CaUsedAsEndEntity`).
    pub fn ca_as_leaf() -> (Leaf, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("certificate");
        let leaf = Leaf {
            chain: vec![cert.der().clone()],
            key_der: key.serialize_der(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            not_before: 0,
            not_after: 0,
        };
        (leaf, cert.pem())
    }

    /// Writes the CA certificate into `dir` and returns its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.pem).expect("write CA file");
        path
    }
}

/// A rustls server configuration serving `leaf`, TLS 1.3 (and 1.2) by default.
pub fn server_config(leaf: &Leaf, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf.key_der.clone().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(leaf.chain.clone(), key)
    .expect("server certificate");
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    Arc::new(config)
}

/// What the HTTPS fake puts in `Date`.
#[derive(Clone, Copy, Debug)]
pub enum DateHeader {
    /// Its own clock: now plus this many whole seconds.
    Shifted(i64),
    /// No `Date` at all.
    Missing,
    /// A current `Date` with an `Age: 5` header (a cache's answer).
    WithAge,
    /// The handshake, then the connection is closed without an answer.
    CloseAfterHandshake,
    /// The handshake, then nothing: the request is read and never answered.
    Hang,
}

/// An HTTPS server that answers every request `204` with a `Date` from its
/// own clock. Stops when dropped.
pub struct HttpsDate {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl HttpsDate {
    /// Starts the server with `leaf` and the given `Date` behaviour.
    pub fn start(leaf: &Leaf, date: DateHeader) -> HttpsDate {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind HTTPS fake");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let config = server_config(leaf, &[b"http/1.1"]);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        let (config, stop) = (config.clone(), stop2.clone());
                        std::thread::spawn(move || serve_one(tcp, config, date, &stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        HttpsDate { addr, stop }
    }

    /// `https://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("https://{}/", self.addr)
    }

    /// `https://localhost:PORT/`.
    pub fn url_localhost(&self) -> String {
        format!("https://localhost:{}/", self.addr.port())
    }
}

impl Drop for HttpsDate {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One connection; a request that arrives after the server was dropped is
/// not answered (a client keeping its connection open finds it closed).
fn serve_one(
    tcp: std::net::TcpStream,
    config: Arc<rustls::ServerConfig>,
    date: DateHeader,
    stop: &AtomicBool,
) {
    let _ = tcp.set_nonblocking(false);
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(conn) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut s = rustls::StreamOwned::new(conn, tcp);
    if matches!(date, DateHeader::CloseAfterHandshake | DateHeader::Hang) {
        // Finish the handshake (the client's first read drives it), then close
        // or keep silent until the client gives up.
        while s.conn.is_handshaking() {
            if s.conn.complete_io(&mut s.sock).is_err() {
                return;
            }
        }
        if matches!(date, DateHeader::Hang) {
            let mut sink = [0u8; 1024];
            while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
        }
        return;
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        head.extend_from_slice(&buf[..n]);
        while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            head.drain(..end + 4);
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let date_line = match date {
                DateHeader::Shifted(shift) => {
                    let t =
                        UNIX_EPOCH + Duration::from_secs((now_secs() as i64 + shift).max(0) as u64);
                    format!("Date: {}\r\n", httpdate::fmt_http_date(t))
                }
                DateHeader::WithAge => format!(
                    "Date: {}\r\nAge: 5\r\n",
                    httpdate::fmt_http_date(std::time::SystemTime::now())
                ),
                _ => String::new(),
            };
            let reply = format!("HTTP/1.1 204 No Content\r\n{date_line}\r\n");
            if s.write_all(reply.as_bytes())
                .and_then(|_| s.flush())
                .is_err()
            {
                return;
            }
        }
    }
}

/// A plain NTP server whose clock is `shift` seconds off (a forger on the
/// path, as far as the client can tell). Stops when dropped.
pub struct ForgedNtp {
    /// Its UDP port on 127.0.0.1.
    pub port: u16,
    stop: Arc<AtomicBool>,
    /// The shift in milliseconds, changeable while it runs ([`ForgedNtp::shift_to`]).
    shift_ms: Arc<std::sync::atomic::AtomicI64>,
}

impl ForgedNtp {
    /// Starts answering every request with a valid reply `shift` seconds off.
    pub fn start(shift: f64) -> ForgedNtp {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind NTP fake");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let port = sock.local_addr().expect("local addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let shift_ms = Arc::new(std::sync::atomic::AtomicI64::new((shift * 1000.0) as i64));
        let shift2 = shift_ms.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stop2.load(Ordering::SeqCst) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if n < 48 {
                    continue;
                }
                let shift = shift2.load(Ordering::SeqCst) as f64 / 1000.0;
                let mut reply = [0u8; 48];
                reply[0] = 4 << 3 | 4; // LI 0, version 4, mode 4
                reply[1] = 2; // stratum
                reply[2] = 6;
                reply[3] = 0xec;
                reply[12..16].copy_from_slice(&[127, 0, 0, 1]);
                reply[16..24].copy_from_slice(&ntp_time(now_secs() + shift - 10.0).to_be_bytes());
                reply[24..32].copy_from_slice(&buf[40..48]);
                let t = ntp_time(now_secs() + shift).to_be_bytes();
                reply[32..40].copy_from_slice(&t);
                reply[40..48].copy_from_slice(&t);
                let _ = sock.send_to(&reply, from);
            }
        });
        ForgedNtp {
            port,
            stop,
            shift_ms,
        }
    }

    /// From now on, answers `shift` seconds off (whole milliseconds).
    pub fn shift_to(&self, shift: f64) {
        self.shift_ms
            .store((shift * 1000.0) as i64, Ordering::SeqCst);
    }

    /// `ntp://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        format!("ntp://127.0.0.1:{}", self.port)
    }
}

impl Drop for ForgedNtp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Unix seconds as an NTP timestamp (32.32, seconds since 1900).
pub fn ntp_time(unix: f64) -> u64 {
    let t = unix + 2_208_988_800.0;
    let secs = t.floor();
    let frac = ((t - secs) * 4_294_967_296.0) as u64;
    ((secs as u64) << 32) | frac.min(0xFFFF_FFFF)
}
