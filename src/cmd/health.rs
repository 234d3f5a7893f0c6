//! `skewguard health [URL]`: a probe client for images without curl (Docker
//! `HEALTHCHECK`, compose `healthcheck`, Kubernetes exec probes).
//!
//! It runs every few seconds in every container, so it stays cheap: no clock
//! measurement, no async runtime, no threads. One blocking `TcpStream` with a
//! deadline over connect, write and read; one `HTTP/1.1` GET with
//! `Connection: close`; the response head parsed by httparse; the body read up
//! to [`MAX_BODY`].

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::core::report::printable;
use crate::proto::source::{HttpTarget, Source};

use super::{EXIT_FAIL, EXIT_OK};

/// Most body bytes read; `/healthz` answers are a few KiB.
pub const MAX_BODY: usize = 64 * 1024;
/// Most bytes of a response head.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most characters printed of the headline (Docker keeps 4 KiB of output).
pub const MAX_HEADLINE: usize = 300;

/// GETs `url` (default: /healthz on the port `serve` listens on, see
/// [`probed_listen`]); 0 on 2xx, 1 otherwise: on timeout (`SKEWGUARD_TIMEOUT`)
/// and for a URL it cannot use too, since Docker reserves 2 for health checks.
/// `listen_flag`: `--listen` was given to this `health` itself.
pub fn run(config: &Config, url: Option<&str>, listen_flag: bool) -> i32 {
    let url = url.map_or_else(
        || {
            let pid1 = std::fs::read("/proc/1/cmdline").ok();
            default_url(probed_listen(config.listen, listen_flag, pid1.as_deref()))
        },
        str::to_string,
    );
    let target = match parse_url(&url) {
        Ok(t) => t,
        Err(e) => {
            super::say_error(config.log_format, &format!("health: {e}"), &[]);
            return EXIT_FAIL;
        }
    };
    match get(&target, config.query.timeout) {
        Ok(r) => {
            println!("{}", r.headline());
            if (200..300).contains(&r.status) {
                EXIT_OK
            } else {
                // Docker's health log is where a user looks: the cause's fix
                // belongs there too (3 lines, well inside its 4 KiB).
                for line in r.advice() {
                    println!("{line}");
                }
                EXIT_FAIL
            }
        }
        Err(e) => {
            println!("skewguard health: {url}: {e}");
            EXIT_FAIL
        }
    }
}

/// The address `health` probes by default, the one `serve` would listen on:
/// this command's own `--listen` (`listen_flag`), else the `--listen` flag of
/// a `skewguard serve` that is PID 1 (an image's `HEALTHCHECK` runs beside
/// it and sees its environment but not its flags; `pid1_cmdline` is
/// `/proc/1/cmdline`), else `SKEWGUARD_LISTEN` or its default (`configured`).
pub fn probed_listen(
    configured: SocketAddr,
    listen_flag: bool,
    pid1_cmdline: Option<&[u8]>,
) -> SocketAddr {
    if listen_flag {
        return configured;
    }
    pid1_cmdline
        .and_then(serve_listen_flag)
        .unwrap_or(configured)
}

/// The `--listen` of a `skewguard … serve` command line (NUL-separated, as in
/// `/proc/PID/cmdline`), if that is what it is.
pub fn serve_listen_flag(cmdline: &[u8]) -> Option<SocketAddr> {
    let mut args = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| std::ffi::OsString::from(String::from_utf8_lossy(a).into_owned()));
    let program = args.next()?;
    let name = std::path::Path::new(&program)
        .file_name()?
        .to_string_lossy()
        .into_owned();
    if !name.starts_with("skewguard") {
        return None;
    }
    let invocation = crate::config::cli::parse(args).ok()?;
    if invocation.command != crate::config::cli::Command::Serve {
        return None;
    }
    invocation.overrides.get("LISTEN")?.trim().parse().ok()
}

/// `http://ADDR:PORT/healthz` for the address `serve` listens on: a wildcard
/// address is reached on the loopback address of its family.
pub fn default_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/healthz", SocketAddr::new(ip, listen.port()))
}

/// Accepts `http://HOST[:PORT][/PATH]` only; https would need TLS, which a probe
/// of a sidecar on the same host does not.
pub fn parse_url(url: &str) -> Result<HttpTarget, String> {
    let expected = "expected http://HOST[:PORT][/PATH]";
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "`{url}`: https is not supported (probe the sidecar over plain http on its own host); {expected}"
            ))
        }
        _ => return Err(format!("`{url}`: not an http:// URL; {expected}")),
    }
    let normalised = format!("http://{}", &url[url.find("://").map_or(0, |i| i + 3)..]);
    match Source::parse(&normalised) {
        Ok(Source::Http(t)) if !t.tls => Ok(t),
        Ok(_) => Err(format!("`{url}`: not an http:// URL; {expected}")),
        Err(_) => Err(format!("`{url}`: cannot be used; {expected}")),
    }
}

/// A response: status line and (decoded, capped) body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Body, at most [`MAX_BODY`] bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The line to print: the JSON body's `headline`, else the body's first
    /// non-empty line, else the status line; at most [`MAX_HEADLINE`] characters.
    pub fn headline(&self) -> String {
        // Only the one field, not a whole `serde_json::Value` (a few KB of binary).
        #[derive(serde::Deserialize)]
        struct Body {
            headline: Option<String>,
        }
        let from_json = serde_json::from_slice::<Body>(&self.body)
            .ok()
            .and_then(|b| b.headline);
        let line = from_json.or_else(|| {
            String::from_utf8_lossy(&self.body)
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string)
        });
        let line = line.unwrap_or_else(|| format!("HTTP {} {}", self.status, self.reason));
        printable(&line, MAX_HEADLINE)
    }
}

impl Response {
    /// `hint: …` and `fix: …` from a JSON body that has them (a failing
    /// `serve`), each at most [`MAX_ADVICE`] characters; empty otherwise.
    pub fn advice(&self) -> Vec<String> {
        #[derive(serde::Deserialize)]
        struct Body {
            hint: Option<String>,
            fix: Option<String>,
        }
        let Ok(body) = serde_json::from_slice::<Body>(&self.body) else {
            return Vec::new();
        };
        [("hint", body.hint), ("fix", body.fix)]
            .into_iter()
            .filter_map(|(name, text)| {
                text.map(|t| format!("{name}: {}", printable(&t, MAX_ADVICE)))
            })
            .collect()
    }
}

/// Most characters printed of a hint or fix line.
pub const MAX_ADVICE: usize = 600;

/// GETs `target`, all of it (resolving, connecting, sending, receiving) within `timeout`.
pub fn get(target: &HttpTarget, timeout: Duration) -> Result<Response, String> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                format!(
                    "no answer within {}",
                    crate::core::duration::human_duration(timeout.as_secs_f64())
                )
            })
    };
    // getaddrinfo cannot be bounded; an IP literal (the usual case) never asks DNS.
    let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?
        .collect();
    let mut stream = None;
    let mut last_error = format!("{} has no address", target.host);
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, left()?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Err(left()
                    .err()
                    .unwrap_or_else(|| format!("connect to {addr}: {e}")))
            }
            Err(e) => last_error = format!("connect to {addr}: {e}"),
        }
    }
    let mut stream = stream.ok_or(last_error)?;

    let host = if target.host.contains(':') {
        format!("[{}]", target.host)
    } else {
        target.host.clone()
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}:{}\r\nUser-Agent: skewguard-health/{}\r\nAccept: application/json, */*\r\nConnection: close\r\n\r\n",
        target.path,
        target.port,
        env!("CARGO_PKG_VERSION"),
    );
    stream
        .set_write_timeout(Some(left()?))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .map_err(|e| io_error("send", e, &left))?;

    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut head: Option<Head> = None;
    loop {
        if let Some(h) = &head {
            if h.complete(&buf) {
                break;
            }
        }
        stream
            .set_read_timeout(Some(left()?))
            .map_err(|e| io_error("receive", e, &left))?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error("receive", e, &left)),
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if head.is_none() {
            head = parse_head(&buf)?;
            if head.is_none() && buf.len() > MAX_HEAD {
                return Err(format!("response head longer than {MAX_HEAD} bytes"));
            }
        }
    }
    let head = head.ok_or_else(|| {
        if buf.is_empty() {
            "the server closed the connection without answering".to_string()
        } else {
            "the server closed the connection in the middle of the response head".to_string()
        }
    })?;
    let raw = &buf[head.len.min(buf.len())..];
    let mut body = if head.chunked {
        dechunk(raw)
    } else {
        raw.to_vec()
    };
    let limit = head.content_length.map_or(MAX_BODY, |n| n.min(MAX_BODY));
    body.truncate(limit);
    Ok(Response {
        status: head.status,
        reason: head.reason,
        body,
    })
}

/// A timeout reads better as the time that ran out than as an OS error code.
fn io_error(what: &str, e: std::io::Error, left: &dyn Fn() -> Result<Duration, String>) -> String {
    match (e.kind(), left()) {
        (std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut, Err(timeout)) => timeout,
        _ => format!("{what}: {e}"),
    }
}

/// What the response head says about the body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Head {
    /// Bytes of the head, with its final empty line.
    len: usize,
    status: u16,
    reason: String,
    content_length: Option<usize>,
    chunked: bool,
}

impl Head {
    /// Whether `buf` (head and body so far) holds all the body that will be used.
    fn complete(&self, buf: &[u8]) -> bool {
        let body = buf.len().saturating_sub(self.len);
        // These never have a body, whatever the headers say.
        if body >= MAX_BODY || matches!(self.status, 100..=199 | 204 | 304) {
            return true;
        }
        match (self.content_length, self.chunked) {
            (_, true) => buf[self.len.min(buf.len())..].ends_with(b"0\r\n\r\n"),
            (Some(n), false) => body >= n,
            // No length: the body ends when the server closes (Connection: close).
            (None, false) => false,
        }
    }
}

/// `Ok(None)`: the head is not complete yet.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("not an HTTP response: {e}")),
    };
    let status = response.code.ok_or("not an HTTP response: no status")?;
    let mut content_length = None;
    let mut chunked = false;
    for h in response.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        if h.name.eq_ignore_ascii_case("content-length") {
            content_length = value.trim().parse::<usize>().ok();
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    Ok(Some(Head {
        len,
        status,
        reason: response.reason.unwrap_or("").to_string(),
        content_length: if chunked { None } else { content_length },
        chunked,
    }))
}

/// Decodes a chunked body as far as it is well formed (a cut-off one yields
/// what arrived; the headline is all that is wanted).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(httparse::Status::Complete((start, size))) = httparse::parse_chunk_size(raw) {
        if size == 0 {
            break;
        }
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let end = start.saturating_add(size).min(raw.len());
        out.extend_from_slice(&raw[start..end]);
        if out.len() >= MAX_BODY || end == raw.len() {
            break;
        }
        // The chunk is followed by CRLF.
        raw = raw.get(end + 2..).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_url_follows_listen() {
        for (listen, want) in [
            ("0.0.0.0:8080", "http://127.0.0.1:8080/healthz"),
            ("[::]:9000", "http://[::1]:9000/healthz"),
            ("10.1.2.3:81", "http://10.1.2.3:81/healthz"),
        ] {
            assert_eq!(default_url(listen.parse().unwrap()), want);
        }
    }

    #[test]
    fn the_port_of_a_serve_running_as_pid_1_is_probed() {
        let env: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let line = b"/skewguard\0serve\0--listen\0[::]:9090\0";
        assert_eq!(
            probed_listen(env, false, Some(line)),
            "[::]:9090".parse().unwrap()
        );
        assert_eq!(
            probed_listen(env, true, Some(line)),
            env,
            "health's own flag wins"
        );
        assert_eq!(
            serve_listen_flag(b"/skewguard\0--listen=127.0.0.1:81\0serve\0"),
            Some("127.0.0.1:81".parse().unwrap())
        );
        for other in [
            &b"/sbin/init\0serve\0--listen\x00127.0.0.1:81\0"[..],
            b"/skewguard\0check\0--listen\x00127.0.0.1:81\0",
            b"/skewguard\0serve\0",
            b"/skewguard\0serve\0--listen\0nonsense\0",
            b"",
        ] {
            assert_eq!(probed_listen(env, false, Some(other)), env);
        }
        assert_eq!(probed_listen(env, false, None), env);
    }

    #[test]
    fn urls() {
        let t = parse_url("http://127.0.0.1:8080/readyz?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 8080, "/readyz?x=1")
        );
        let t = parse_url("HTTP://[::1]").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("::1", 80, "/"));
        for bad in [
            "https://127.0.0.1/",
            "ntp://x",
            "127.0.0.1:8080",
            "http://",
            "http://a b/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(parse_url("https://x/")
            .unwrap_err()
            .contains("https is not supported"));
    }

    #[test]
    fn heads_are_parsed_and_completeness_judged() {
        let raw = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nab";
        let h = parse_head(raw).unwrap().unwrap();
        assert_eq!(
            (h.status, h.content_length, h.chunked),
            (503, Some(5), false)
        );
        assert!(!h.complete(raw));
        assert!(h.complete(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nabcde"));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-"), Ok(None));
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            b"hello world"
        );
        assert_eq!(dechunk(b"5\r\nhel"), b"hel");
        assert_eq!(dechunk(b"zz\r\n"), b"");
    }

    #[test]
    fn advice_comes_from_the_json_body_only() {
        let r = |body: &[u8]| Response {
            status: 503,
            reason: "Service Unavailable".into(),
            body: body.to_vec(),
        };
        let body = br#"{"verdict":"fail","headline":"FAIL: behind","hint":"a VM paused","fix":"run chrony"}"#;
        assert_eq!(
            r(body).advice(),
            vec!["hint: a VM paused", "fix: run chrony"]
        );
        assert!(r(b"FAIL: plain text").advice().is_empty());
        assert!(r(br#"{"headline":"OK"}"#).advice().is_empty());
    }

    #[test]
    fn headline_prefers_json_then_first_line_then_status() {
        let r = |body: &[u8]| Response {
            status: 503,
            reason: "Service Unavailable".into(),
            body: body.to_vec(),
        };
        assert_eq!(
            r(br#"{"verdict":"fail","headline":"FAIL: behind"}"#).headline(),
            "FAIL: behind"
        );
        assert_eq!(r(b"\n  boom\nsecond").headline(), "boom");
        assert_eq!(r(b"").headline(), "HTTP 503 Service Unavailable");
        let long = r("é".repeat(1000).as_bytes()).headline();
        assert_eq!(long.chars().count(), MAX_HEADLINE + 1);
        assert_eq!(r(b"a\x1b[31mb").headline(), "a [31mb");
    }
}
