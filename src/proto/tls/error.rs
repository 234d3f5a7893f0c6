//! A failed handshake or certificate, as the source error it means: a
//! certificate outside its validity by the local clock is skew evidence,
//! everything else a TLS or verification failure in words.

use rustls::pki_types::UnixTime;
use rustls::CertificateError;

use crate::core::sample::SourceError;

/// Maps a failed TLS handshake to the source error it means.
///
/// tokio-rustls wraps the rustls error in an `io::Error`; digging it out tells a
/// certificate outside its validity period (skew evidence) from everything else.
pub fn handshake_error(e: &std::io::Error) -> SourceError {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return SourceError::Tls(format!("handshake failed: {e}"));
    };
    let gap = |a: UnixTime, b: UnixTime| a.as_secs().saturating_sub(b.as_secs()) as f64;
    match tls {
        rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { time, not_after }) => {
            SourceError::OutsideCertificate {
                at_least: gap(*time, *not_after),
                local_behind: false,
            }
        }
        rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext {
            time,
            not_before,
        }) => SourceError::OutsideCertificate {
            at_least: gap(*not_before, *time),
            local_behind: true,
        },
        rustls::Error::InvalidCertificate(CertificateError::Expired) => {
            SourceError::OutsideCertificate {
                at_least: 0.0,
                local_behind: false,
            }
        }
        rustls::Error::InvalidCertificate(CertificateError::NotValidYet) => {
            SourceError::OutsideCertificate {
                at_least: 0.0,
                local_behind: true,
            }
        }
        rustls::Error::InvalidCertificate(c) => certificate_error(c),
        other => SourceError::Tls(other.to_string()),
    }
}

/// A certificate that does not verify, in words, with the likely fix. The
/// rustls name stays in parentheses for searching.
pub fn certificate_error(c: &CertificateError) -> SourceError {
    const MITM: &str = "a man-in-the-middle (or DNS pointing elsewhere)";
    let text = match c {
        CertificateError::UnknownIssuer => format!(
            "the server's certificate is not signed by a trusted authority (UnknownIssuer): a private CA this client lacks (SKEWGUARD_CA_FILE, SSL_CERT_FILE, SSL_CERT_DIR), or {MITM}"
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            let presented = match c {
                CertificateError::NotValidForNameContext { presented, .. } => {
                    format!(" (it names {})", presented.join(", "))
                }
                _ => String::new(),
            };
            format!(
                "the server's certificate is not valid for this host name{presented} (NotValidForName): check the source's host, or {MITM}"
            )
        }
        CertificateError::BadSignature => format!(
            "the server's certificate has a bad signature (BadSignature): {MITM}"
        ),
        CertificateError::Revoked => "the server's certificate is revoked (Revoked)".to_string(),
        CertificateError::Other(other) if format!("{other:?}").contains("CaUsedAsEndEntity") => {
            "the server presents a CA certificate as its own (CaUsedAsEndEntity): put that very certificate in SKEWGUARD_CA_FILE to pin it, or give the server a leaf (CA:FALSE) signed by a CA in SKEWGUARD_CA_FILE".to_string()
        }
        other => format!("the server's certificate does not verify ({other:?}): {MITM}, or it is misconfigured"),
    };
    SourceError::Verification(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(e: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn validity_failures_become_skew_evidence() {
        let t = |s| UnixTime::since_unix_epoch(std::time::Duration::from_secs(s));
        let expired = io(rustls::Error::InvalidCertificate(
            CertificateError::ExpiredContext {
                time: t(1_000_000),
                not_after: t(400_000),
            },
        ));
        assert_eq!(
            handshake_error(&expired),
            SourceError::OutsideCertificate {
                at_least: 600_000.0,
                local_behind: false
            }
        );
        let early = io(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYetContext {
                time: t(1_000),
                not_before: t(4_600),
            },
        ));
        assert_eq!(
            handshake_error(&early),
            SourceError::OutsideCertificate {
                at_least: 3_600.0,
                local_behind: true
            }
        );
    }

    #[test]
    fn untrusted_certificates_are_verification_failures_in_words() {
        let unknown = io(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        match handshake_error(&unknown) {
            SourceError::Verification(m) => {
                assert!(
                    m.contains("UnknownIssuer") && m.contains("SKEWGUARD_CA_FILE"),
                    "{m}"
                )
            }
            e => panic!("{e:?}"),
        }
        let name = io(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        ));
        assert!(
            matches!(handshake_error(&name), SourceError::Verification(m) if m.contains("man-in-the-middle"))
        );
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        match handshake_error(&reset) {
            SourceError::Tls(m) => assert!(m.contains("reset by peer"), "{m}"),
            e => panic!("{e:?}"),
        }
    }
}
