//! How time references are named: `ntp://…`, `nts://…`, `https://…`,
//! `http://…`, `roughtime://…#KEY` and presets. One row of [`SCHEMES`] per URI scheme gives its
//! default port, whether it takes a path and whether it can authenticate.

use std::fmt;

use crate::core::sample::SourceError;
use crate::proto::proxy::Proxy;

/// A configured time reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// An SNTPv4 server.
    Ntp {
        /// Host name or IP address literal (IPv6 without brackets).
        host: String,
        /// UDP port, 123 unless given.
        port: u16,
    },
    /// An HTTP(S) server whose `Date` response header is read.
    Http(HttpTarget),
    /// An NTS (RFC 8915) server: key exchange on TCP `port`, then NTP.
    Nts {
        /// Host name or IP address literal of the NTS-KE server.
        host: String,
        /// NTS-KE TCP port, 4460 unless given.
        port: u16,
    },
    /// A Roughtime server, with its pinned long-term Ed25519 public key.
    Roughtime {
        /// Host name or IP address literal.
        host: String,
        /// UDP port, 2002 unless given.
        port: u16,
        /// The server's long-term public key (the URI's `#KEY`).
        key: [u8; 32],
    },
    /// A node file that `serve --publish` writes on this kernel: no network.
    Node {
        /// Absolute path of the file.
        path: String,
    },
    /// AWS ClockBound's shared-memory segment: the host's own bound.
    ClockBound {
        /// Absolute path of the segment; `None`: ClockBound's default paths.
        path: Option<String>,
    },
}

/// Where an HTTP `Date` source lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpTarget {
    /// `true` for `https://`.
    pub tls: bool,
    /// Host name or IP address literal (IPv6 without brackets).
    pub host: String,
    /// TCP port (443 or 80 unless given).
    pub port: u16,
    /// Request path, starting with `/`.
    pub path: String,
    /// The HTTP proxy it is reached through (from the environment, see
    /// [`crate::proto::proxy`]); `None`: directly.
    pub proxy: Option<Proxy>,
}

/// One URI scheme: how a source of it is written and what it can vouch for.
pub struct Scheme {
    /// The scheme, as in `ntp://`.
    pub name: &'static str,
    /// The port when the URI names none.
    pub default_port: u16,
    /// The form shown in error messages and help.
    pub form: &'static str,
    /// Whether the URI may carry a path (else only `/` or nothing).
    pub takes_path: bool,
    /// Whether a measurement can come over a verified channel.
    pub authenticates: bool,
    /// A file on this machine, not a server: no host or port, only an
    /// absolute path (`node:///PATH`), never resolved.
    pub local: bool,
    /// Builds the source from a parsed host, port and path.
    make: fn(String, u16, String) -> Source,
}

/// Every scheme, in the order error messages list them.
pub const SCHEMES: &[Scheme] = &[
    Scheme {
        name: "ntp",
        default_port: 123,
        form: "ntp://HOST[:PORT]",
        takes_path: false,
        authenticates: false,
        local: false,
        make: |host, port, _| Source::Ntp { host, port },
    },
    Scheme {
        name: "nts",
        default_port: 4460,
        form: "nts://HOST[:PORT]",
        takes_path: false,
        authenticates: true,
        local: false,
        make: |host, port, _| Source::Nts { host, port },
    },
    Scheme {
        name: "roughtime",
        default_port: 2002,
        form: "roughtime://HOST[:PORT]#KEY",
        takes_path: false,
        authenticates: true,
        local: false,
        // `parse` passes the key, already checked, in place of the path.
        make: |host, port, key| Source::Roughtime {
            key: crate::proto::roughtime::key::parse(&key).unwrap_or_default(),
            host,
            port,
        },
    },
    Scheme {
        name: "https",
        default_port: 443,
        form: "https://HOST[:PORT][/PATH]",
        takes_path: true,
        authenticates: true,
        local: false,
        make: |host, port, path| {
            Source::Http(HttpTarget {
                tls: true,
                host,
                port,
                path,
                proxy: None,
            })
        },
    },
    Scheme {
        name: "http",
        default_port: 80,
        form: "http://HOST[:PORT][/PATH]",
        takes_path: true,
        authenticates: false,
        local: false,
        make: |host, port, path| {
            Source::Http(HttpTarget {
                tls: false,
                host,
                port,
                path,
                proxy: None,
            })
        },
    },
    Scheme {
        name: "node",
        default_port: 0,
        form: "node:///PATH",
        takes_path: true,
        // As trusted as the measurement it carries, never more (see core::node).
        authenticates: true,
        local: true,
        make: |_, _, path| Source::Node { path },
    },
    Scheme {
        name: "clockbound",
        default_port: 0,
        form: "clockbound://[/PATH]",
        takes_path: true,
        authenticates: false,
        local: true,
        make: |_, _, path| Source::ClockBound {
            path: (path != "/").then_some(path),
        },
    },
];

/// Presets: a name that stands for a list of sources.
pub const PRESETS: &[(&str, &[&str])] = &[
    ("aws", AWS_PRESET),
    ("nts", NTS_PRESET),
    ("roughtime", ROUGHTIME_PRESET),
];

/// The sources that the `aws` preset stands for.
pub const AWS_PRESET: &[&str] = &[
    "ntp://169.254.169.123",
    "ntp://time.aws.com",
    "https://sts.amazonaws.com/",
];

/// The sources that the `nts` preset stands for: public NTS servers.
pub const NTS_PRESET: &[&str] = &[
    "nts://time.cloudflare.com",
    "nts://nts.netnod.se",
    "nts://ptbtime1.ptb.de",
];

/// The sources that the `roughtime` preset stands for: public Roughtime
/// servers with their long-term keys pinned. Keys from cloudflare/roughtime's
/// `ecosystem.json` (all four listed there as IETF-Roughtime), gathered
/// 2026-12-01 (`/work/shared/NOTES.md`, "Authenticated time"); a server that
/// rotates its key fails verification until this list is updated.
pub const ROUGHTIME_PRESET: &[&str] = &[
    "roughtime://roughtime.cloudflare.com:2003#0GD7c3yP8xEc4Zl2zeuN2SlLvDVVocjsPSL8/Rl/7zg=",
    "roughtime://roughtime.int08h.com:2002#AW5uAoTSTDfG5NfY1bTh08GUnOqlRb+HVhbJ3ODJvsE=",
    "roughtime://roughtime.se:2002#S3AzfZJ5CjSdkJ21ZJGbxqdYP/SoE8fXKY0+aicsehI=",
    "roughtime://time.txryan.com:2002#iBVjxg/1j7y1+kQUTBYdTabxCppesU/07D4PMDJk2WA=",
];

impl Source {
    /// The scheme row, host, port and path (empty where the scheme has none).
    fn parts(&self) -> (&'static Scheme, &str, u16, &str) {
        let scheme = |name: &str| {
            SCHEMES
                .iter()
                .find(|s| s.name == name)
                .expect("every variant has a row in SCHEMES")
        };
        match self {
            Source::Ntp { host, port } => (scheme("ntp"), host, *port, ""),
            Source::Nts { host, port } => (scheme("nts"), host, *port, ""),
            Source::Roughtime { host, port, .. } => (scheme("roughtime"), host, *port, ""),
            Source::Http(t) => (
                scheme(if t.tls { "https" } else { "http" }),
                &t.host,
                t.port,
                &t.path,
            ),
            Source::Node { path } => (scheme("node"), "", 0, path),
            Source::ClockBound { path } => {
                (scheme("clockbound"), "", 0, path.as_deref().unwrap_or(""))
            }
        }
    }

    /// Whether this is a file on this machine rather than a server (`node://`,
    /// `clockbound://`): never resolved, never rate-limited.
    pub fn is_local(&self) -> bool {
        self.parts().0.local
    }

    /// The scheme of this source (`ntp`, `nts`, `https`, `http`, `roughtime`).
    pub fn scheme(&self) -> &'static str {
        self.parts().0.name
    }

    /// Host name or address literal.
    pub fn host(&self) -> &str {
        self.parts().1
    }

    /// The port it is reached at.
    pub fn port(&self) -> u16 {
        self.parts().2
    }

    /// The HTTP proxy this source is reached through, if any.
    pub fn proxy(&self) -> Option<&Proxy> {
        match self {
            Source::Http(t) => t.proxy.as_ref(),
            _ => None,
        }
    }

    /// The source as a metric label: its URI, and ` via PROXY` when it goes
    /// through one (as the source line says it).
    pub fn label(&self) -> String {
        match self.proxy() {
            Some(p) => format!("{self} via {p}"),
            None => self.to_string(),
        }
    }

    /// Whether a measurement of this source can be authenticated
    /// (`https://`, `nts://`, `roughtime://`).
    pub fn can_authenticate(&self) -> bool {
        self.parts().0.authenticates
    }

    /// Parses a comma-separated list of source URIs and presets.
    ///
    /// The error says which element is wrong and what forms are accepted.
    pub fn parse_list(list: &str) -> Result<Vec<Source>, String> {
        let mut out = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match PRESETS.iter().find(|(name, _)| *name == item) {
                Some((_, uris)) => {
                    for uri in *uris {
                        out.push(Source::parse(uri)?);
                    }
                }
                None => out.push(Source::parse(item)?),
            }
        }
        if out.is_empty() {
            return Err(format!("no source given; expected e.g. {}", accepted()));
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|s| seen.insert(s.clone()));
        Ok(out)
    }

    /// Parses one source URI.
    pub fn parse(uri: &str) -> Result<Source, String> {
        let bad = |why: &str| format!("`{uri}`: {why}; expected {}", accepted());
        let (name, rest) = uri.split_once("://").ok_or_else(|| bad("no scheme"))?;
        // Roughtime's `#KEY` is base64, which may hold `/`: split it off first.
        let (rest, key) = match (name, rest.split_once('#')) {
            ("roughtime", Some((r, k))) => (r, Some(k)),
            ("roughtime", None) => {
                return Err(bad(
                    "a roughtime source needs the server's long-term public key after `#`",
                ))
            }
            _ => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let scheme = SCHEMES
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| bad("unknown scheme"))?;
        if scheme.local {
            return parse_local(scheme, rest).map_err(|e| bad(&e));
        }
        let (host, port) = split_host_port(authority, scheme.default_port).map_err(|e| {
            // An unbracketed IPv6 address: the whole source as meant, `ntp://[::1]:123`.
            match e.strip_prefix(BRACKETS) {
                Some(form) => {
                    let path = if path == "/" { "" } else { path };
                    bad(&format!(
                        "{BRACKETS}`{name}://{}{path}`",
                        form.trim_matches('`')
                    ))
                }
                None => bad(&e),
            }
        })?;
        if !scheme.takes_path && path != "/" {
            return Err(bad(&format!("an {name} source has no path")));
        }
        if path.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad("the path holds spaces or control characters"));
        }
        let path = if scheme.takes_path { path } else { "" };
        if let Some(key) = key {
            let parsed = crate::proto::roughtime::key::parse(key).map_err(|e| bad(&e))?;
            let canonical = crate::proto::roughtime::key::to_base64(&parsed);
            return Ok((scheme.make)(host, port, canonical));
        }
        Ok((scheme.make)(host, port, path.to_string()))
    }
}

/// The accepted forms, for error messages: every scheme's form, then the presets.
fn accepted() -> String {
    let forms: Vec<String> = SCHEMES.iter().map(|s| format!("`{}`", s.form)).collect();
    let presets: Vec<String> = PRESETS.iter().map(|(p, _)| format!("`{p}`")).collect();
    format!("{} or a preset ({})", forms.join(", "), presets.join(", "))
}

/// How an unbracketed IPv6 address is refused; the bracketed form follows.
const BRACKETS: &str = "an IPv6 address goes in brackets: ";

/// A local source: nothing between `//` and the absolute path (`node:///x`).
fn parse_local(scheme: &Scheme, rest: &str) -> Result<Source, String> {
    let name = scheme.name;
    if rest.is_empty() && name == "clockbound" {
        return Ok((scheme.make)(String::new(), 0, "/".into()));
    }
    if !rest.starts_with('/') {
        return Err(format!(
            "a {name} source names a file on this machine, no host: {name}:///ABSOLUTE/PATH"
        ));
    }
    if rest.chars().any(|c| c.is_control()) {
        return Err("the path holds control characters".into());
    }
    if rest == "/" && name == "node" {
        return Err("a node source needs the path of the node file".into());
    }
    if rest.split('/').any(|c| c == "..") {
        return Err("the path may not hold `..`".into());
    }
    Ok((scheme.make)(String::new(), 0, rest.to_string()))
}

fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), String> {
    if authority.contains('@') {
        return Err("user information is not allowed".into());
    }
    let bracketed = authority.starts_with('[');
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or("an IPv6 literal lacks its closing `]`")?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{h}` is not an IPv6 address"));
        }
        match after {
            "" => (h, None),
            p => (
                h,
                Some(p.strip_prefix(':').ok_or("junk after the IPv6 literal")?),
            ),
        }
    } else if authority.matches(':').count() > 1 {
        // An IPv6 literal without brackets: say the bracketed form meant.
        let form = match authority.rsplit_once(':') {
            Some((h, p)) if h.parse::<std::net::Ipv6Addr>().is_ok() && p.parse::<u16>().is_ok() => {
                format!("[{h}]:{p}")
            }
            _ => format!("[{authority}]"),
        };
        return Err(format!("{BRACKETS}`{form}`"));
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if !bracketed
        && (!host.starts_with(|c: char| c.is_ascii_alphanumeric())
            || host.contains(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-')))
    {
        return Err(format!("`{host}` is not a host name or address"));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => return Err(format!("`{p}` is not a port (1-65535)")),
        },
    };
    Ok((host.to_string(), port))
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, host, port, path) = self.parts();
        if scheme.local {
            return write!(f, "{}://{path}", scheme.name);
        }
        if host.contains(':') {
            write!(f, "{}://[{host}]", scheme.name)?;
        } else {
            write!(f, "{}://{host}", scheme.name)?;
        }
        if port != scheme.default_port {
            write!(f, ":{port}")?;
        }
        if let Source::Roughtime { key, .. } = self {
            write!(f, "#{}", crate::proto::roughtime::key::to_base64(key))?;
        }
        f.write_str(path)
    }
}

/// Resolves a source's host: IP literals are used as they are, without DNS;
/// names go to the system resolver, duplicates dropped, order kept.
pub async fn resolve(host: &str, port: u16) -> Result<Vec<std::net::SocketAddr>, SourceError> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![std::net::SocketAddr::new(ip, port)]);
    }
    let found = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| SourceError::Resolve(format!("{host}: {e}")))?;
    let mut addrs = Vec::new();
    for a in found {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.is_empty() {
        return Err(SourceError::Resolve(format!("{host}: no addresses")));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uris_and_presets() {
        let cases: &[(&str, &str)] = &[
            ("ntp://127.0.0.1:11123", "ntp://127.0.0.1:11123"),
            ("ntp://time.aws.com", "ntp://time.aws.com"),
            ("ntp://[fd00:ec2::123]", "ntp://[fd00:ec2::123]"),
            ("ntp://[::1]:1123", "ntp://[::1]:1123"),
            ("https://sts.amazonaws.com", "https://sts.amazonaws.com/"),
            ("http://127.0.0.1:8080/x?y=1", "http://127.0.0.1:8080/x?y=1"),
            ("https://h:443/", "https://h/"),
        ];
        for (input, shown) in cases {
            let s = Source::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(s.to_string(), *shown);
        }
        let aws = Source::parse_list("aws").unwrap();
        assert_eq!(aws.len(), 3);
        assert_eq!(Source::parse_list("aws,nts").unwrap().len(), 6);
        assert_eq!(
            Source::parse("nts://127.0.0.1:11132").unwrap(),
            Source::Nts {
                host: "127.0.0.1".into(),
                port: 11132
            }
        );
        assert_eq!(
            Source::parse("nts://time.cloudflare.com")
                .unwrap()
                .to_string(),
            "nts://time.cloudflare.com"
        );
        assert!(Source::parse("nts://x/p").is_err());
        for (uri, shown) in [
            (
                "node:///var/run/skewguard/node.json",
                "node:///var/run/skewguard/node.json",
            ),
            ("clockbound://", "clockbound://"),
            ("clockbound:///", "clockbound://"),
            ("clockbound:///run/cb/shm0", "clockbound:///run/cb/shm0"),
        ] {
            let s = Source::parse(uri).unwrap_or_else(|e| panic!("{uri}: {e}"));
            assert!(s.is_local());
            assert_eq!(s.to_string(), shown);
        }
        assert_eq!(
            Source::parse("node:///a/b").unwrap(),
            Source::Node {
                path: "/a/b".into()
            }
        );
        for bad in [
            "node://",
            "node:///",
            "node://host/x",
            "node://x",
            "node:///a/../b",
            "clockbound://h",
        ] {
            let e = Source::parse(bad).expect_err(bad);
            assert!(e.contains("expected"), "{bad}: {e}");
        }
        let mixed = Source::parse_list("aws, ntp://169.254.169.123,ntp://x").unwrap();
        assert_eq!(mixed.len(), 4, "duplicates are dropped");
    }

    #[test]
    fn parses_roughtime_sources_with_their_keys() {
        let b64 = "AW5uAoTSTDfG5NfY1bTh08GUnOqlRb+HVhbJ3ODJvsE=";
        let s = Source::parse(&format!("roughtime://roughtime.int08h.com#{b64}")).unwrap();
        assert_eq!(s.port(), 2002);
        assert!(s.can_authenticate());
        assert_eq!(
            s.to_string(),
            format!("roughtime://roughtime.int08h.com#{b64}")
        );
        let Source::Roughtime { key, .. } = &s else {
            panic!("{s:?}")
        };
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let h = Source::parse(&format!("roughtime://127.0.0.1:11202#{hex}")).unwrap();
        assert_eq!(h.to_string(), format!("roughtime://127.0.0.1:11202#{b64}"));
        assert_eq!(Source::parse(&h.to_string()).unwrap(), h);
        let six = Source::parse(&format!("roughtime://[::1]:2003#{b64}")).unwrap();
        assert_eq!(six.to_string(), format!("roughtime://[::1]:2003#{b64}"));
        let preset = Source::parse_list("roughtime").unwrap();
        assert_eq!(preset.len(), 4);
        assert!(preset.iter().all(|s| s.scheme() == "roughtime"));
        assert_eq!(Source::parse_list("aws,nts,roughtime").unwrap().len(), 10);
        // A `#` stays part of other schemes' paths, as before.
        assert_eq!(
            Source::parse("http://h/a#b").unwrap().to_string(),
            "http://h/a#b"
        );
    }

    #[test]
    fn refuses_roughtime_sources_without_a_good_key() {
        for bad in [
            "roughtime://h",
            "roughtime://h:2002",
            "roughtime://h#",
            "roughtime://h#AW5u",
            "roughtime://h#AW5uAoTSTDfG5NfY1bTh08GUnOqlRb+HVhbJ3ODJvsE=/x",
            "roughtime://h/p#AW5uAoTSTDfG5NfY1bTh08GUnOqlRb+HVhbJ3ODJvsE=",
            "roughtime://#AW5uAoTSTDfG5NfY1bTh08GUnOqlRb+HVhbJ3ODJvsE=",
        ] {
            let e = Source::parse_list(bad).expect_err(bad);
            assert!(e.contains("expected"), "{bad}: {e}");
        }
        let e = Source::parse("roughtime://h").unwrap_err();
        assert!(e.contains("public key"), "{e}");
    }

    #[test]
    fn rejects_bad_uris_with_the_accepted_form() {
        for bad in [
            "",
            "ntp:/x",
            "ftp://x",
            "ntp://",
            "ntp://x:0",
            "ntp://x:70000",
            "ntp://x/path",
            "ntp://[::1",
            "ntp://[zz]",
            "https://u@h/",
            "http://h/a b",
            "ntp://-x",
            "ntp://a b",
        ] {
            let e = Source::parse_list(bad).expect_err(bad);
            assert!(e.contains("expected"), "{bad}: {e}");
        }
    }
}
