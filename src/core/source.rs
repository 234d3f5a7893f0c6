//! Time references: how they are named (`ntp://…`, `https://…`, presets), what
//! one measurement of them yields or why it failed, how they are queried, and
//! how their names resolve. Shared by every protocol module; imports none.

use std::fmt;
use std::time::Duration;

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
}

impl Source {
    /// Whether a measurement of this source can be authenticated
    /// (`https://` and `nts://`).
    pub fn can_authenticate(&self) -> bool {
        match self {
            Source::Ntp { .. } => false,
            Source::Http(t) => t.tls,
            Source::Nts { .. } => true,
        }
    }
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
}

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

impl Source {
    /// Parses a comma-separated list of source URIs and presets.
    ///
    /// The error says which element is wrong and what forms are accepted.
    pub fn parse_list(list: &str) -> Result<Vec<Source>, String> {
        let mut out = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "aws" | "nts" => {
                    let preset = if item == "aws" {
                        AWS_PRESET
                    } else {
                        NTS_PRESET
                    };
                    for uri in preset {
                        out.push(Source::parse(uri)?);
                    }
                }
                _ => out.push(Source::parse(item)?),
            }
        }
        if out.is_empty() {
            return Err("no source given; expected e.g. `aws`, `nts`, `ntp://HOST[:PORT]`, `nts://HOST[:PORT]`, `https://HOST[:PORT][/PATH]`".into());
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|s| seen.insert(s.clone()));
        Ok(out)
    }

    /// Parses one source URI.
    pub fn parse(uri: &str) -> Result<Source, String> {
        let bad = |why: &str| {
            format!(
                "`{uri}`: {why}; expected `ntp://HOST[:PORT]`, `nts://HOST[:PORT]`, `https://HOST[:PORT][/PATH]`, `http://HOST[:PORT][/PATH]` or a preset (`aws`, `nts`)"
            )
        };
        let (scheme, rest) = uri.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let default_port = match scheme {
            "ntp" => 123,
            "nts" => 4460,
            "https" => 443,
            "http" => 80,
            _ => return Err(bad("unknown scheme")),
        };
        let (host, port) = split_host_port(authority, default_port).map_err(|e| bad(&e))?;
        match scheme {
            "ntp" => {
                if path != "/" {
                    return Err(bad("an ntp source has no path"));
                }
                Ok(Source::Ntp { host, port })
            }
            "nts" => {
                if path != "/" {
                    return Err(bad("an nts source has no path"));
                }
                Ok(Source::Nts { host, port })
            }
            _ => {
                if path.chars().any(|c| c.is_control() || c == ' ') {
                    return Err(bad("the path holds spaces or control characters"));
                }
                Ok(Source::Http(HttpTarget {
                    tls: scheme == "https",
                    host,
                    port,
                    path: path.to_string(),
                }))
            }
        }
    }
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
        match self {
            Source::Ntp { host, port } => {
                write!(f, "ntp://{}", bracket(host))?;
                if *port != 123 {
                    write!(f, ":{port}")?;
                }
                Ok(())
            }
            Source::Nts { host, port } => {
                write!(f, "nts://{}", bracket(host))?;
                if *port != 4460 {
                    write!(f, ":{port}")?;
                }
                Ok(())
            }
            Source::Http(t) => {
                let scheme = if t.tls { "https" } else { "http" };
                write!(f, "{scheme}://{}", bracket(&t.host))?;
                if t.port != if t.tls { 443 } else { 80 } {
                    write!(f, ":{}", t.port)?;
                }
                f.write_str(&t.path)
            }
        }
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// One usable measurement of a source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Reference minus local, in seconds (positive: the local clock is behind).
    pub offset: f64,
    /// Half-width of the interval that holds the true offset, in seconds (≥ 0).
    pub uncertainty: f64,
    /// Round-trip time of the query that gave this sample, in seconds (≥ 0).
    pub rtt: f64,
    /// The answer came over a verified channel (`https://` with a verified
    /// chain and name, `nts://`); plain `ntp://` and `http://` are not.
    pub authenticated: bool,
    /// Set when the certificate was outside its validity by the local clock and
    /// the handshake was finished on a date-exempted basis (see `http_date`).
    pub exemption: Option<Exemption>,
    /// A narrower estimate that holds only under an assumption the source
    /// cannot prove (HTTP `Date`: a live, truncated server clock); reported
    /// beside the honest interval, never voted with.
    pub estimate: Option<Estimate>,
}

/// A narrower offset estimate than a sample's honest interval (see [`Sample::estimate`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Centre, seconds (reference minus local).
    pub offset: f64,
    /// Half-width, seconds.
    pub uncertainty: f64,
}

impl Sample {
    /// This sample, from a date-exempted handshake whose server time lay inside
    /// the certificate's validity, narrowed by the certificate gap (`offset ≥
    /// gap` when the local clock is behind, `≤ −gap` when ahead) where the two
    /// agree, and marked authenticated and exempted.
    pub fn with_certificate_gap(self, at_least: f64, local_behind: bool) -> Sample {
        let (mut lo, mut hi) = (
            self.offset - self.uncertainty,
            self.offset + self.uncertainty,
        );
        if local_behind {
            lo = lo.max(at_least.min(hi));
        } else {
            hi = hi.min((-at_least).max(lo));
        }
        Sample {
            offset: (lo + hi) / 2.0,
            uncertainty: (hi - lo) / 2.0,
            authenticated: true,
            exemption: Some(Exemption {
                at_least,
                local_behind,
                server_time_read: true,
            }),
            ..self
        }
    }

    /// An unauthenticated sample without exemption.
    pub fn plain(offset: f64, uncertainty: f64, rtt: f64) -> Sample {
        Sample {
            offset,
            uncertainty,
            rtt,
            authenticated: false,
            exemption: None,
            estimate: None,
        }
    }
}

/// How a date-exempted handshake came to count: the certificate was outside its
/// validity period by the local clock, its chain and name verified at the edge
/// of that period, and the server's own time lies inside it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemption {
    /// The certificate gap: a lower bound on |offset|, seconds.
    pub at_least: f64,
    /// The local clock is before `notBefore` (behind) rather than after `notAfter`.
    pub local_behind: bool,
    /// `false` when no server time could be read after the handshake: the
    /// sample is then the one-sided interval the gap alone gives.
    pub server_time_read: bool,
}

/// Half-width of the interval standing for "at least the gap" when only the
/// certificate gap is known (about 300 years: unbounded for any signing window).
pub const ONE_SIDED_HALF_WIDTH: f64 = 1e10;

impl Exemption {
    /// The one-sided interval `offset ≥ gap` (local behind) or `offset ≤ −gap`,
    /// as a finite sample.
    pub fn gap_only_sample(at_least: f64, local_behind: bool, rtt: f64) -> Sample {
        let centre = at_least + ONE_SIDED_HALF_WIDTH;
        Sample {
            offset: if local_behind { centre } else { -centre },
            uncertainty: ONE_SIDED_HALF_WIDTH,
            rtt,
            authenticated: true,
            exemption: Some(Exemption {
                at_least,
                local_behind,
                server_time_read: false,
            }),
            estimate: None,
        }
    }
}

/// Why a source gave no usable measurement.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceError {
    /// The host name did not resolve.
    Resolve(String),
    /// A socket or connection error.
    Io(String),
    /// No valid answer within the timeout.
    Timeout(Duration),
    /// The NTP server sent a Kiss-o'-Death with this code (RATE, or one that
    /// means "not ready", such as INIT).
    KissOfDeath(String),
    /// The server refused service for good (NTP DENY or RSTR): it is not
    /// queried again by this process.
    Refused(String),
    /// An answer arrived but failed validation (the reason says which check).
    Invalid(String),
    /// An HTTP-level failure (no or bad `Date`, `Age` present, oversized headers, …).
    Http(String),
    /// A TLS failure other than certificate validity.
    Tls(String),
    /// An authenticated source's credentials did not verify (unknown issuer,
    /// wrong name, a bad NTS authenticator): a warning sign, not an absence.
    Verification(String),
    /// The server's certificate is expired or not yet valid *by the local clock*:
    /// evidence of skew. `at_least` is a lower bound on |offset| in seconds;
    /// `local_behind` says the local clock is before the certificate's validity.
    OutsideCertificate {
        /// Lower bound on how far off the local clock is, in seconds.
        at_least: f64,
        /// The local clock is before `notBefore` (behind) rather than after `notAfter`.
        local_behind: bool,
    },
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Resolve(e) => write!(f, "cannot resolve host: {e}"),
            SourceError::Io(e) => write!(f, "{e}"),
            SourceError::Timeout(d) => write!(f, "no valid answer within {}", crate::core::duration::human_duration(d.as_secs_f64())),
            SourceError::KissOfDeath(code) => write!(f, "server sent Kiss-o'-Death {code}"),
            SourceError::Refused(e) => write!(f, "refused: {e}"),
            SourceError::Invalid(e) => write!(f, "invalid reply: {e}"),
            SourceError::Http(e) => write!(f, "{e}"),
            SourceError::Tls(e) => write!(f, "TLS: {e}"),
            SourceError::Verification(e) => write!(f, "verification failed: {e}"),
            SourceError::OutsideCertificate { at_least, local_behind } => write!(
                f,
                "the local clock is outside this server certificate's validity period: it is at least {} {}",
                crate::core::duration::human_duration(*at_least),
                if *local_behind { "behind" } else { "ahead" }
            ),
        }
    }
}

impl SourceError {
    /// Whether the server was reached and its answer refused, rather than no
    /// server answering at all (DNS, the network, a timeout, a closed port).
    pub fn reached_server(&self) -> bool {
        !matches!(
            self,
            SourceError::Resolve(_) | SourceError::Io(_) | SourceError::Timeout(_)
        )
    }
}

/// What one query of one source produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The measurement, or why there is none.
    pub result: Result<Sample, SourceError>,
    /// Do not query this source again sooner than this (NTP RATE kiss).
    pub retry_after: Option<Duration>,
}

impl Outcome {
    /// An outcome without a back-off request.
    pub fn from_result(result: Result<Sample, SourceError>) -> Self {
        Outcome {
            result,
            retry_after: None,
        }
    }
}

/// How sources are queried.
#[derive(Debug, Clone)]
pub struct QuerySettings {
    /// Bound on one query (DNS, connect and answer).
    pub timeout: Duration,
    /// NTP queries per source; the sample with the least delay is kept.
    pub samples: u32,
    /// Pause between two NTP queries of the same address.
    pub sample_interval: Duration,
    /// Time the HTTP `Date` refinement may spend after the first answer.
    pub http_budget: Duration,
    /// Extra PEM root certificates trusted for `https://` sources (besides the built-in webpki roots).
    pub ca_file: Option<std::path::PathBuf>,
    /// A measurement whose error bound is wider than this is an error, not a vote.
    pub max_source_error: Duration,
}

impl Default for QuerySettings {
    fn default() -> Self {
        QuerySettings {
            timeout: Duration::from_secs(2),
            samples: 1,
            sample_interval: Duration::from_secs(2),
            http_budget: Duration::from_secs(2),
            ca_file: None,
            max_source_error: Duration::from_secs(3),
        }
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
        let mixed = Source::parse_list("aws, ntp://169.254.169.123,ntp://x").unwrap();
        assert_eq!(mixed.len(), 4, "duplicates are dropped");
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
