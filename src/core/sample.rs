//! What measuring a source yields: a [`Sample`] with its honest error bound, or
//! a [`SourceError`] saying why there is none, and the [`QuerySettings`] every
//! protocol is queried with. Shared by every protocol; imports no protocol.

use std::fmt;
use std::time::Duration;

/// One usable measurement of a source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Reference minus local, in seconds (positive: the local clock is behind).
    pub offset: f64,
    /// Half-width of the interval that holds the true offset, in seconds (≥ 0).
    pub uncertainty: f64,
    /// Round-trip time of the query that gave this sample, in seconds (≥ 0).
    pub rtt: f64,
    /// How far the answer may be trusted: the rung of the trust ladder it
    /// stands on ([`Trust`]).
    pub trust: Trust,
    /// Set when the certificate was outside its validity by the local clock and
    /// the handshake was finished on a date-exempted basis (see `http_date`);
    /// `trust` is then [`Trust::DateExempted`].
    pub exemption: Option<Exemption>,
    /// A narrower estimate that holds only under an assumption the source
    /// cannot prove (HTTP `Date`: a live, truncated server clock); reported
    /// beside the honest interval, never voted with.
    pub estimate: Option<Estimate>,
    /// Which trust store verified the certificate of an `https://` source.
    pub verified_by: Option<TrustStore>,
}

/// Where the certificate that authenticated a TLS source was trusted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustStore {
    /// The server presented a certificate of `SKEWGUARD_CA_FILE` itself
    /// (pinned, byte for byte).
    Pinned,
    /// A root of `SKEWGUARD_CA_FILE`.
    CaFile,
    /// The compiled-in webpki roots (Mozilla's list).
    BuiltIn,
    /// A root of the PEM bundle `SSL_CERT_FILE` names.
    SslCertFile,
    /// A root in the hashed directory `SSL_CERT_DIR` names.
    SslCertDir,
}

impl TrustStore {
    /// Every store, in the order a chain is attributed to them.
    pub const ALL: [TrustStore; 5] = [
        TrustStore::Pinned,
        TrustStore::CaFile,
        TrustStore::BuiltIn,
        TrustStore::SslCertFile,
        TrustStore::SslCertDir,
    ];

    /// The store of a code.
    pub fn from_code(code: &str) -> Option<TrustStore> {
        TrustStore::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The stable code (`"verified_by"` in JSON).
    pub fn code(self) -> &'static str {
        match self {
            TrustStore::Pinned => "pinned",
            TrustStore::CaFile => "ca-file",
            TrustStore::BuiltIn => "built-in",
            TrustStore::SslCertFile => "ssl-cert-file",
            TrustStore::SslCertDir => "ssl-cert-dir",
        }
    }

    /// In words, for the source line.
    pub fn name(self) -> &'static str {
        match self {
            TrustStore::Pinned => "pinned in SKEWGUARD_CA_FILE",
            TrustStore::CaFile => "SKEWGUARD_CA_FILE",
            TrustStore::BuiltIn => "built-in roots",
            TrustStore::SslCertFile => "SSL_CERT_FILE",
            TrustStore::SslCertDir => "SSL_CERT_DIR",
        }
    }
}

/// The ladder of trust a measurement stands on, lowest first. Selection lets
/// the highest rung that answered decide and the lower ones at most narrow its
/// result (`core::select::select_trusted`); `docs/trust.md` has the ladder and
/// the threat model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Trust {
    /// Nothing vouches for the answer (`ntp://`, `http://`): anyone on the
    /// path can forge it.
    #[default]
    Unauthenticated,
    /// A verified channel whose certificate is outside its validity by the
    /// local clock and inside it by the server's time (a date-exempted
    /// handshake): the chain and name hold, but only at the server's word
    /// about the date, so an old key can speak here.
    DateExempted,
    /// A verified channel whose certificate is valid by the local clock
    /// (`https://`, `nts://`).
    Authenticated,
    /// Authenticated without any certificate date, so without leaning on the
    /// clock under test (Roughtime: a pinned long-term key and a signed nonce).
    ClockIndependent,
}

impl Trust {
    /// The name used in reports, JSON and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Trust::Unauthenticated => "unauthenticated",
            Trust::DateExempted => "date-exempted",
            Trust::Authenticated => "authenticated",
            Trust::ClockIndependent => "clock-independent",
        }
    }

    /// Whether a verified channel carried the answer (every rung above
    /// [`Trust::Unauthenticated`]).
    pub fn authenticated(self) -> bool {
        self > Trust::Unauthenticated
    }
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
    /// Whether a verified channel carried this answer.
    pub fn authenticated(&self) -> bool {
        self.trust.authenticated()
    }

    /// This sample, from a date-exempted handshake whose server time lay inside
    /// the certificate's validity, narrowed by the certificate gap (`offset ≥
    /// gap` when the local clock is behind, `≤ −gap` when ahead) where the two
    /// agree, and marked [`Trust::DateExempted`].
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
            trust: Trust::DateExempted,
            exemption: Some(Exemption {
                at_least,
                local_behind,
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
            trust: Trust::Unauthenticated,
            exemption: None,
            estimate: None,
            verified_by: None,
        }
    }

    /// A sample authenticated without leaning on the local clock (Roughtime).
    pub fn clock_independent(offset: f64, uncertainty: f64, rtt: f64) -> Sample {
        Sample {
            trust: Trust::ClockIndependent,
            ..Sample::plain(offset, uncertainty, rtt)
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
    /// A socket error of `what` (e.g. "send to") `addr`, in words; a refused
    /// port is said plainly, naming the `server` kind that does not listen.
    pub fn socket(
        what: &str,
        addr: std::net::SocketAddr,
        server: &str,
        e: &std::io::Error,
    ) -> SourceError {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            SourceError::Io(format!(
                "{what} {addr}: connection refused (ICMP port unreachable): no {server} server listens there"
            ))
        } else {
            SourceError::Io(format!("{what} {addr}: {e}"))
        }
    }

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
    /// Extra PEM root certificates trusted for `https://` sources (besides the
    /// built-in webpki roots); a certificate in it that a server presents as
    /// its own is pinned for that server.
    pub ca_file: Option<std::path::PathBuf>,
    /// OpenSSL's `SSL_CERT_FILE`: a PEM bundle of further roots (a host's or
    /// a corporate CA store).
    pub ssl_cert_file: Option<std::path::PathBuf>,
    /// OpenSSL's `SSL_CERT_DIR`: directories (`:`-separated) of roots under
    /// hashed names (`HASH.0`, as `openssl rehash` makes them).
    pub ssl_cert_dir: Option<String>,
    /// A measurement whose error bound is wider than this is an error, not a vote.
    pub max_source_error: Duration,
    /// `node://` sources: a uid allowed to own the node file besides root and this user.
    pub node_owner: Option<u32>,
    /// The HTTP `Date` refinement is skipped when the honest interval alone
    /// already decides the verdict against these thresholds (`None`: always refine).
    pub decide: Option<crate::core::verdict::Thresholds>,
}

impl Default for QuerySettings {
    fn default() -> Self {
        QuerySettings {
            timeout: Duration::from_secs(2),
            samples: 1,
            sample_interval: Duration::from_secs(2),
            http_budget: Duration::from_secs(2),
            ca_file: None,
            ssl_cert_file: None,
            ssl_cert_dir: None,
            max_source_error: Duration::from_secs(3),
            node_owner: None,
            decide: None,
        }
    }
}
