//! TLS for `https://` sources: trust roots, and a certificate check that turns
//! "expired" or "not yet valid" *by the local clock* into evidence of skew.
//!
//! A server's certificate is checked at the measurement's own realtime anchor.
//! When the only fault is the validity period, the gap between the local time
//! and `notAfter` (or `notBefore`) is a lower bound on how far off the local
//! clock is, provided the certificate is otherwise sound. To be sure of that,
//! the chain and the name are checked again at the edge of the validity period:
//! an untrusted or misnamed certificate is reported as such, never as skew.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::clock::{UnixNanos, NANOS_PER_SEC};
use crate::source::SourceError;

/// Builds the client configuration for one measurement whose realtime anchor is `now`.
///
/// Trusts the compiled-in webpki roots plus every certificate in `ca_file`
/// (PEM). Offers only HTTP/1.1 by ALPN, the one protocol the source speaks.
pub fn client_config(ca_file: Option<&Path>, now: UnixNanos) -> Result<ClientConfig, SourceError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        add_pem_roots(&mut roots, path)?;
    }
    // An explicit provider: the process-wide default may be unset or another one.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| SourceError::Tls(format!("cannot build the certificate verifier: {e}")))?;
    let verifier = Arc::new(ValidityAwareVerifier {
        inner,
        now: unix_time(now),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SourceError::Tls(format!("no usable protocol version: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn add_pem_roots(roots: &mut RootCertStore, path: &Path) -> Result<(), SourceError> {
    let shown = path.display();
    // Read once, small file: a blocking read here costs less than a thread hop.
    let pem = std::fs::read(path)
        .map_err(|e| SourceError::Tls(format!("cannot read CA file {shown}: {e}")))?;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert =
            cert.map_err(|e| SourceError::Tls(format!("CA file {shown} is not valid PEM: {e}")))?;
        roots.add(cert).map_err(|e| {
            SourceError::Tls(format!(
                "CA file {shown} holds an unusable certificate: {e}"
            ))
        })?;
        added += 1;
    }
    if added == 0 {
        return Err(SourceError::Tls(format!(
            "CA file {shown} holds no PEM certificate"
        )));
    }
    Ok(())
}

/// Unix time for the certificate check; a local clock before 1970 checks as 1970,
/// which still fails every real certificate as "not yet valid".
fn unix_time(now: UnixNanos) -> UnixTime {
    let secs = (now.div_euclid(NANOS_PER_SEC)).clamp(0, i128::from(u64::MAX)) as u64;
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs))
}

/// Checks the server certificate with webpki at the measurement's anchor time,
/// and double-checks validity-period failures at the edge of the period.
#[derive(Debug)]
struct ValidityAwareVerifier {
    inner: Arc<WebPkiServerVerifier>,
    now: UnixTime,
}

impl ServerCertVerifier for ValidityAwareVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let check = |at| {
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, at)
        };
        let first = check(self.now);
        let edge = match &first {
            Err(rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
                not_after,
                ..
            })) => *not_after,
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext {
                not_before,
                ..
            })) => *not_before,
            _ => return first,
        };
        match check(edge) {
            // Sound apart from the time: keep the failure, its context bounds the skew.
            Ok(_) => first,
            Err(rustls::Error::InvalidCertificate(
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. },
            )) => Err(rustls::Error::General(
                "the certificate chain has no moment at which all of it is valid".into(),
            )),
            Err(other) => Err(other),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

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
        other => SourceError::Tls(other.to_string()),
    }
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
    fn other_failures_stay_tls_errors() {
        let unknown = io(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        match handshake_error(&unknown) {
            SourceError::Tls(m) => assert!(m.contains("UnknownIssuer"), "{m}"),
            e => panic!("{e:?}"),
        }
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        match handshake_error(&reset) {
            SourceError::Tls(m) => assert!(m.contains("reset by peer"), "{m}"),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn unreadable_or_empty_ca_files_are_named() {
        let missing = client_config(Some(Path::new("/nonexistent/ca.pem")), 0).unwrap_err();
        assert!(
            missing.to_string().contains("/nonexistent/ca.pem"),
            "{missing}"
        );
        let dir = std::env::temp_dir().join(format!("skewguard-empty-ca-{}", std::process::id()));
        std::fs::write(&dir, "not a certificate\n").unwrap();
        let empty = client_config(Some(&dir), 0).unwrap_err();
        let _ = std::fs::remove_file(&dir);
        assert!(empty.to_string().contains("no PEM certificate"), "{empty}");
        assert!(client_config(None, 1_700_000_000 * NANOS_PER_SEC).is_ok());
    }

    #[test]
    fn times_before_1970_check_as_1970() {
        assert_eq!(unix_time(-5 * NANOS_PER_SEC).as_secs(), 0);
        assert_eq!(unix_time(7 * NANOS_PER_SEC + 9).as_secs(), 7);
    }
}
