//! HTTP proxies for `https://` and `http://` sources, read from the
//! environment as curl reads it, and the `CONNECT` exchange that opens a
//! tunnel through one.
//!
//! Which proxy (if any) reaches a source is decided once, when the
//! configuration is read: `https_proxy`/`HTTPS_PROXY` for `https://`,
//! `http_proxy`/`HTTP_PROXY` for `http://`, `all_proxy`/`ALL_PROXY` for both,
//! minus the hosts `no_proxy`/`NO_PROXY` lists. The matching is
//! hyper-util's [`Matcher`] (curl's rules: names and their subdomains, IP
//! addresses, CIDR ranges); this module adds what curl also does and the
//! matcher does not: `*` for every host (IP literals too) and `HOST:PORT`
//! entries that apply to that port only.
//!
//! An `https://` source goes through a `CONNECT` tunnel, so TLS runs end to
//! end and the proxy sees only ciphertext; a plain `http://` source sends its
//! requests to the proxy in absolute form, as curl does. The `CONNECT` is
//! written here rather than with hyper-util's `Tunnel` because that one
//! reports every refusal but 407 as "unsuccessful", without the status a
//! user needs, and needs the `client-legacy` connector stack besides.
//!
//! Credentials (`http://user:password@proxy:3128`) go only into the
//! `Proxy-Authorization` header: everything shown (reports, logs, errors,
//! `Debug`) names the proxy without them.

use std::fmt;

use hyper_util::client::proxy::matcher::Matcher;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::core::sample::SourceError;

/// `User-Agent` of every request (the HEAD requests of `http_date` and the
/// CONNECT to a proxy), so server and proxy operators can tell who is asking.
pub const USER_AGENT_VALUE: &str = concat!("skewguard/", env!("CARGO_PKG_VERSION"));

/// Largest `CONNECT` response head read (status line and headers, bytes).
pub const MAX_CONNECT_HEAD: usize = 16 * 1024;

/// curl's port for a proxy URL that names none.
pub const DEFAULT_PROXY_PORT: u16 = 1080;

/// The proxy variables, each pair as curl reads it (lower case first).
const VARIABLES: &[(&str, [&str; 2])] = &[
    ("https", ["https_proxy", "HTTPS_PROXY"]),
    ("http", ["http_proxy", "HTTP_PROXY"]),
    ("all", ["all_proxy", "ALL_PROXY"]),
    ("no", ["no_proxy", "NO_PROXY"]),
];

/// An HTTP proxy a source is reached through.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Proxy {
    /// `http://host:port`: how it is shown, never with credentials.
    pub shown: String,
    /// Host name or address literal (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The `Proxy-Authorization` value (`Basic …`), never shown.
    authorization: Option<String>,
    /// A scheme other than `http` (`https`, `socks5`, …), which is refused
    /// when the source is measured.
    unsupported: Option<String>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("shown", &self.shown)
            .field("credentials", &self.authorization.is_some())
            .finish()
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Proxy {
    /// The `Proxy-Authorization` header value, if the URL carried credentials.
    pub fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }

    /// Refuses a proxy this client cannot speak to (TLS to the proxy, SOCKS).
    pub fn usable(&self) -> Result<(), SourceError> {
        match &self.unsupported {
            Some(scheme) => Err(SourceError::Io(format!(
                "proxy {}: {scheme}:// proxies are not supported, only http:// ones (HTTP CONNECT)",
                self.shown
            ))),
            None => Ok(()),
        }
    }
}

/// The proxies the environment names, and which sources bypass them.
pub struct Proxies {
    matcher: Matcher,
    /// `no_proxy` contains `*`: no source uses a proxy.
    bypass_all: bool,
    /// `HOST:PORT` entries of `no_proxy`: the host rule, for that port only.
    port_rules: Vec<(u16, Matcher)>,
    /// The proxy to name in hints (HTTPS first), if any is set.
    shown: Option<String>,
}

impl fmt::Debug for Proxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxies")
            .field("shown", &self.shown)
            .finish()
    }
}

impl Proxies {
    /// Reads the proxy variables through `get` (name → non-empty value).
    ///
    /// A value set but not understood is an error, `(variable, value with
    /// credentials hidden, why)`: going around a proxy the user named would
    /// fail in a way that is hard to see.
    pub fn from_vars<'a>(
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Proxies, (String, String, String)> {
        let mut values = [None; 4];
        for (slot, (_, names)) in values.iter_mut().zip(VARIABLES) {
            *slot = names.iter().find_map(|n| get(n).map(|v| (*n, v.trim())));
        }
        let [https, http, all, no] = values;
        for (name, value) in [https, http, all].into_iter().flatten() {
            if Matcher::builder()
                .all(value)
                .build()
                .intercept(&"http://h/".parse().expect("a valid URI"))
                .is_none()
            {
                return Err((
                    name.to_string(),
                    redact(value),
                    "a proxy URL, e.g. http://proxy:3128 or http://user:password@proxy:3128".into(),
                ));
            }
        }
        let no = no.map_or("", |(_, v)| v);
        let mut hosts = Vec::new();
        let mut port_rules = Vec::new();
        let mut bypass_all = false;
        for entry in no.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                bypass_all = true;
            } else if let Some((host, port)) = split_port(entry) {
                let rule = Matcher::builder().all("http://p:1").no(host).build();
                port_rules.push((port, rule));
            } else {
                hosts.push(entry);
            }
        }
        let value = |v: Option<(&str, &str)>| v.map_or(String::new(), |(_, v)| v.to_string());
        let matcher = Matcher::builder()
            .https(value(https))
            .http(value(http))
            .all(value(all))
            .no(hosts.join(","))
            .build();
        let shown = [https, all, http]
            .into_iter()
            .flatten()
            .next()
            .map(|(_, v)| shown_url(v));
        Ok(Proxies {
            matcher,
            bypass_all,
            port_rules,
            shown,
        })
    }

    /// No proxy at all.
    pub fn none() -> Proxies {
        Proxies {
            matcher: Matcher::builder().build(),
            bypass_all: true,
            port_rules: Vec::new(),
            shown: None,
        }
    }

    /// The proxy named in hints: the HTTPS one, else `ALL_PROXY`'s, else the
    /// HTTP one; `None` when none is set.
    pub fn shown(&self) -> Option<&str> {
        self.shown.as_deref()
    }

    /// The proxy that reaches `host:port` (over TLS or not), or `None` to go
    /// direct. Takes the parts rather than a source's `HttpTarget`, which
    /// holds the route: this module stays below `source`.
    pub fn route(&self, tls: bool, host: &str, port: u16) -> Option<Proxy> {
        if self.bypass_all {
            return None;
        }
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let scheme = if tls { "https" } else { "http" };
        let uri: hyper::Uri = format!("{scheme}://{host}:{port}/").parse().ok()?;
        let bypassed = self
            .port_rules
            .iter()
            .any(|(p, rule)| *p == port && rule.intercept(&uri).is_none());
        if bypassed {
            return None;
        }
        let intercept = self.matcher.intercept(&uri)?;
        let proxy_uri = intercept.uri();
        let host = proxy_uri
            .host()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = proxy_uri.port_u16().unwrap_or(DEFAULT_PROXY_PORT);
        let scheme = proxy_uri
            .scheme_str()
            .unwrap_or("http")
            .to_ascii_lowercase();
        let shown_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        Some(Proxy {
            shown: format!("{scheme}://{shown_host}:{port}"),
            host,
            port,
            authorization: intercept
                .basic_auth()
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            unsupported: (scheme != "http").then_some(scheme),
        })
    }
}

/// `HOST:PORT` of a `no_proxy` entry (`[::1]:8080` for IPv6); `None` when it
/// names no port (a bare IPv6 address, a CIDR range, a name).
fn split_port(entry: &str) -> Option<(&str, u16)> {
    let (host, port) = entry.rsplit_once(':')?;
    let port = port.parse().ok()?;
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return Some((v6, port));
    }
    (!host.contains(':')).then_some((host, port))
}

/// A proxy URL with any credentials replaced by `***`.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    match scheme {
        Some(s) => format!("{s}://{authority}{path}"),
        None => format!("{authority}{path}"),
    }
}

/// A proxy URL as shown in hints: no credentials, no path.
fn shown_url(url: &str) -> String {
    let redacted = redact(url);
    let bare = redacted
        .split_once("***@")
        .map_or(redacted.clone(), |(s, h)| format!("{s}{h}"));
    let with_scheme = if bare.contains("://") {
        bare
    } else {
        format!("http://{bare}")
    };
    with_scheme.trim_end_matches('/').to_string()
}

/// Asks `proxy`, over `io`, for a tunnel to `host:port` (`CONNECT`), and
/// reads its answer up to the end of the head. Any 2xx opens the tunnel;
/// anything else is an error naming the proxy and the status.
///
/// The head is read a byte at a time so that nothing after it (the server
/// speaks only after the TLS client hello, but a proxy may misbehave) is
/// taken from the tunnel. Not bounded in time here: the caller's timeout is.
pub async fn connect<S>(io: &mut S, proxy: &Proxy, host: &str, port: u16) -> Result<(), SourceError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {}\r\n",
        USER_AGENT_VALUE
    );
    if let Some(auth) = proxy.authorization() {
        request.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    request.push_str("\r\n");
    let io_error = |e: std::io::Error| {
        SourceError::Io(format!(
            "proxy {}: CONNECT to {authority} failed: {e}",
            proxy.shown
        ))
    };
    io.write_all(request.as_bytes()).await.map_err(io_error)?;
    io.flush().await.map_err(io_error)?;
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_CONNECT_HEAD {
            return Err(SourceError::Io(format!(
                "proxy {}: its answer to CONNECT is over {} KiB",
                proxy.shown,
                MAX_CONNECT_HEAD / 1024
            )));
        }
        match io.read_u8().await {
            Ok(b) => head.push(b),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(SourceError::Io(format!(
                    "proxy {} closed the connection without answering CONNECT to {authority}",
                    proxy.shown
                )))
            }
            Err(e) => return Err(io_error(e)),
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let parsed = response.parse(&head);
    let code = match (parsed, response.code) {
        (Ok(httparse::Status::Complete(_)), Some(code)) => code,
        _ => {
            return Err(SourceError::Io(format!(
                "proxy {}: its answer to CONNECT is not HTTP",
                proxy.shown
            )))
        }
    };
    if (200..300).contains(&code) {
        return Ok(());
    }
    Err(refusal(
        proxy,
        &authority,
        code,
        response.reason.unwrap_or(""),
    ))
}

/// The error for a proxy's refusal with `code`, with what to check.
pub fn refusal(proxy: &Proxy, target: &str, code: u16, reason: &str) -> SourceError {
    let advice = match code {
        // tinyproxy answers a CONNECT with bad credentials 401, not 407.
        401 | 407 if proxy.authorization().is_some() => {
            ": it refused the credentials in the proxy URL (user:password@ in HTTPS_PROXY/HTTP_PROXY/ALL_PROXY)"
        }
        401 | 407 => ": it wants credentials; put them in the proxy URL (http://user:password@proxy:port)",
        403 => ": its rules forbid this destination or port; ask its operator, or use a source it allows",
        502..=504 => ": it could not reach the server",
        _ => "",
    };
    let reason: String = reason
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let sep = if reason.is_empty() { "" } else { " " };
    SourceError::Io(format!(
        "proxy {} refused {target}: {code}{sep}{reason}{advice}",
        proxy.shown
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(pairs: &[(&str, &str)]) -> Proxies {
        Proxies::from_vars(|n| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)).unwrap()
    }

    fn via(p: &Proxies, tls: bool, host: &str, port: u16) -> Option<String> {
        p.route(tls, host, port).map(|p| p.shown)
    }

    #[test]
    fn variables_pick_the_proxy_by_scheme_as_curl_does() {
        let p = proxies(&[
            ("HTTPS_PROXY", "http://secure:3128"),
            ("http_proxy", "plain:8080"),
        ]);
        assert_eq!(
            via(&p, true, "a.example", 443).as_deref(),
            Some("http://secure:3128")
        );
        assert_eq!(
            via(&p, false, "a.example", 80).as_deref(),
            Some("http://plain:8080")
        );
        let p = proxies(&[("ALL_PROXY", "http://all:3128/")]);
        assert_eq!(
            via(&p, true, "a.example", 443).as_deref(),
            Some("http://all:3128")
        );
        assert_eq!(
            via(&p, false, "a.example", 80).as_deref(),
            Some("http://all:3128")
        );
        // Lower case first, as curl; no port: curl's 1080.
        let p = proxies(&[
            ("https_proxy", "http://lower"),
            ("HTTPS_PROXY", "http://upper:1"),
        ]);
        assert_eq!(
            via(&p, true, "a.example", 443).as_deref(),
            Some("http://lower:1080")
        );
        assert_eq!(p.shown(), Some("http://lower"));
        assert!(proxies(&[]).route(true, "a.example", 443).is_none());
        assert_eq!(proxies(&[]).shown(), None);
    }

    #[test]
    fn no_proxy_takes_names_suffixes_addresses_ranges_ports_and_star() {
        let p = proxies(&[
            ("HTTPS_PROXY", "http://p:3128"),
            (
                "NO_PROXY",
                "internal.example, .corp.example, 10.0.0.0/8, 192.168.1.7, ::1, svc.local:8443, [fd00::1]:443",
            ),
        ]);
        let direct = [
            ("internal.example", 443),
            ("time.internal.example", 443),
            ("a.corp.example", 443),
            ("corp.example", 443),
            ("10.1.2.3", 443),
            ("192.168.1.7", 443),
            ("::1", 443),
            ("svc.local", 8443),
            ("fd00::1", 443),
        ];
        for (host, port) in direct {
            assert_eq!(via(&p, true, host, port), None, "{host}:{port}");
        }
        let proxied = [
            ("notinternal.example", 443),
            ("192.168.1.8", 443),
            ("11.0.0.1", 443),
            ("svc.local", 443),
            ("fd00::1", 8443),
            ("sts.amazonaws.com", 443),
        ];
        for (host, port) in proxied {
            assert!(via(&p, true, host, port).is_some(), "{host}:{port}");
        }
        let star = proxies(&[("HTTPS_PROXY", "http://p:3128"), ("no_proxy", "*")]);
        assert_eq!(via(&star, true, "127.0.0.1", 443), None);
        assert_eq!(via(&star, true, "a.example", 443), None);
    }

    #[test]
    fn credentials_are_sent_never_shown() {
        let p = proxies(&[("HTTPS_PROXY", "http://alice:s3cr%40t@proxy:3128")]);
        let route = p.route(true, "a.example", 443).unwrap();
        assert_eq!(route.shown, "http://proxy:3128");
        // base64("alice:s3cr@t")
        assert_eq!(route.authorization(), Some("Basic YWxpY2U6czNjckB0"));
        let debug = format!("{route:?} {p:?}");
        assert!(
            !debug.contains("s3cr") && !debug.contains("YWxp"),
            "{debug}"
        );
        assert_eq!(p.shown(), Some("http://proxy:3128"));
        assert_eq!(redact("http://u:pw@h:1/x"), "http://***@h:1/x");
        assert_eq!(redact("u:pw@h:1"), "***@h:1");
        assert_eq!(redact("http://h:1"), "http://h:1");
    }

    #[test]
    fn unusable_proxy_urls_are_refused_with_the_value_hidden() {
        let err =
            Proxies::from_vars(|n| (n == "HTTPS_PROXY").then_some("http://u:pw@")).unwrap_err();
        assert_eq!(err.0, "HTTPS_PROXY");
        assert!(!err.1.contains("pw"), "{err:?}");
        let socks = proxies(&[("ALL_PROXY", "socks5://p:1080")]);
        let route = socks.route(true, "a.example", 443).unwrap();
        assert!(route.usable().unwrap_err().to_string().contains("socks5"));
    }

    async fn exchange(
        answer: &'static [u8],
        auth: Option<&str>,
    ) -> (Result<(), SourceError>, String) {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        let proxy = Proxy {
            shown: "http://p:3128".into(),
            host: "p".into(),
            port: 3128,
            authorization: auth.map(str::to_string),
            unsupported: None,
        };
        let serve = async move {
            let mut seen = Vec::new();
            while !seen.ends_with(b"\r\n\r\n") {
                seen.push(server.read_u8().await.unwrap());
            }
            // Split the answer across writes, as a slow proxy may.
            for chunk in answer.chunks(5) {
                server.write_all(chunk).await.unwrap();
                tokio::task::yield_now().await;
            }
            server.write_all(b"TUNNELLED").await.unwrap();
            String::from_utf8(seen).unwrap()
        };
        let (result, seen) = tokio::join!(connect(&mut client, &proxy, "::1", 8443), serve);
        if result.is_ok() {
            let mut after = [0u8; 9];
            client.read_exact(&mut after).await.unwrap();
            assert_eq!(&after, b"TUNNELLED", "the tunnel's first bytes were kept");
        }
        (result, seen)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn connect_opens_on_2xx_and_names_the_proxy_and_status_otherwise() {
        let (ok, seen) = exchange(
            b"HTTP/1.1 200 Connection established\r\n\r\n",
            Some("Basic eA=="),
        )
        .await;
        assert!(ok.is_ok(), "{ok:?}");
        assert!(
            seen.starts_with("CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n"),
            "{seen}"
        );
        assert!(
            seen.contains("Proxy-Authorization: Basic eA==\r\n"),
            "{seen}"
        );
        let (ok, _) = exchange(b"HTTP/1.0 201 Whatever\r\nX: y\r\n\r\n", None).await;
        assert!(ok.is_ok(), "{ok:?}");
        for (answer, want) in [
            (&b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"[..], "http://p:3128 refused [::1]:8443: 407 Proxy Authentication Required: it wants credentials"),
            (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", "403 Forbidden: its rules forbid"),
            (b"HTTP/1.1 502 Bad Gateway\r\n\r\n", "502 Bad Gateway: it could not reach"),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "not HTTP"),
        ] {
            let (err, _) = exchange(answer, None).await;
            let err = err.unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn connect_stops_at_a_close_or_an_endless_head() {
        let proxy = Proxy {
            shown: "http://p:3128".into(),
            host: "p".into(),
            port: 3128,
            authorization: None,
            unsupported: None,
        };
        let (mut client, server) = tokio::io::duplex(1024);
        drop(server);
        let err = connect(&mut client, &proxy, "h", 443).await.unwrap_err();
        assert!(err.to_string().contains("http://p:3128"), "{err}");
        let (mut client, mut server) = tokio::io::duplex(1024);
        let flood = async move {
            let _ = server.write_all(b"HTTP/1.1 200 OK\r\n").await;
            loop {
                if server
                    .write_all(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaa\r\n")
                    .await
                    .is_err()
                {
                    break;
                }
            }
        };
        let ask = async move {
            let result = connect(&mut client, &proxy, "h", 443).await;
            drop(client);
            result
        };
        let (err, _) = tokio::join!(ask, flood);
        assert!(err.unwrap_err().to_string().contains("over 16 KiB"));
    }
}
