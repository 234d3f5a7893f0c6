//! TLS for `https://` sources: trust roots, and a certificate check that turns
//! "expired" or "not yet valid" *by the local clock* into evidence of skew.
//!
//! A server's certificate is checked at the measurement's own realtime anchor.
//! When the only fault is the validity period, the gap between the local time
//! and `notAfter` (or `notBefore`) is a lower bound on how far off the local
//! clock is, provided the certificate is otherwise sound. To be sure of that,
//! the chain and the name are checked again at the edge of the validity period:
//! an untrusted or misnamed certificate is reported as such, never as skew.
//!
//! When chain and name verify at the edge, the handshake is finished on that
//! date-exempted basis (NTPsec's `nocerttimecheck` idea) and the verifier leaves
//! a [`DateExemption`] behind: the caller must then ask the server for its time
//! and accept it only if the chain is valid at that time ([`DateExemption::valid_at`]).
//! Residual risk: whoever holds the private key of an expired certificate for
//! the name can claim a time inside its old validity, i.e. make the local clock
//! look ahead (or, for a not-yet-valid one, behind).

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{
    CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::core::sample::SourceError;
use crate::os::clock::{UnixNanos, NANOS_PER_SEC};

/// Where the verifier leaves the date exemption of the latest handshake.
pub type ExemptionSlot = Arc<Mutex<Option<DateExemption>>>;

/// A handshake finished although the certificate was outside its validity by
/// the local clock: chain and name verified at the edge of the validity period.
#[derive(Debug, Clone)]
pub struct DateExemption {
    /// How far outside the validity the local clock is, seconds (lower bound on |offset|).
    pub at_least: f64,
    /// The local clock is before `notBefore` rather than after `notAfter`.
    pub local_behind: bool,
    end_entity: CertificateDer<'static>,
    intermediates: Vec<CertificateDer<'static>>,
    server_name: ServerName<'static>,
    inner: Arc<WebPkiServerVerifier>,
}

impl DateExemption {
    /// Whether the whole chain (and name) verifies at `unix_secs`: the server's
    /// own time vouches for the certificate.
    pub fn valid_at(&self, unix_secs: i64) -> bool {
        let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(unix_secs).unwrap_or(0),
        ));
        self.inner
            .verify_server_cert(
                &self.end_entity,
                &self.intermediates,
                &self.server_name,
                &[],
                at,
            )
            .is_ok()
    }
}

/// Reads (and clears) what the latest handshake left in `slot`.
pub fn take_exemption(slot: &ExemptionSlot) -> Option<DateExemption> {
    slot.lock().ok().and_then(|mut g| g.take())
}

/// The trusted roots: the compiled-in webpki roots plus every certificate in
/// `ca_file` (PEM).
pub fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore, SourceError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        add_pem_roots(&mut roots, path)?;
    }
    Ok(roots)
}

/// The crypto provider of every TLS client here (`https://` sources and the
/// NTS key exchange): *ring*'s, explicit because the process-wide default may
/// be unset or another one, with its AES-GCM cipher suites only and no
/// private-key loader.
///
/// AES-GCM is the suite every TLS 1.3 server must offer (RFC 8446 §9.1, and so
/// every NTS-KE server) and what TLS 1.2 servers offer alongside ChaCha20;
/// leaving ChaCha20-Poly1305 out, and the signing code a client without a
/// certificate never calls, keeps about 60 KB out of the static binary.
/// Signature verification and key exchange are *ring*'s defaults, unchanged.
pub fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::{cipher_suite as cs, kx_group};
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        signature_verification_algorithms: SIGNATURE_ALGORITHMS,
        secure_random: &OsRandom,
        key_provider: &NoClientKeys,
    })
}

/// The signature algorithms a server's certificate chain and handshake may
/// use: every one *ring* verifies through webpki (ECDSA P-256/P-384, Ed25519,
/// RSA PKCS#1 and PSS from 2048 bits), the same set as *ring*'s default
/// provider, named here because that provider is reachable only together with
/// its ChaCha20 suites. Each TLS signature scheme maps to the webpki
/// algorithms that can verify it (in TLS 1.2 an ECDSA scheme does not fix the
/// curve, hence two each).
static SIGNATURE_ALGORITHMS: WebPkiSupportedAlgorithms = {
    use webpki::ring as alg;
    WebPkiSupportedAlgorithms {
        all: &[
            alg::ECDSA_P256_SHA256,
            alg::ECDSA_P256_SHA384,
            alg::ECDSA_P384_SHA256,
            alg::ECDSA_P384_SHA384,
            alg::ED25519,
            alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
            alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
            alg::RSA_PKCS1_2048_8192_SHA256,
            alg::RSA_PKCS1_2048_8192_SHA384,
            alg::RSA_PKCS1_2048_8192_SHA512,
            alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
            alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
            alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
        ],
        mapping: &[
            (
                SignatureScheme::ECDSA_NISTP384_SHA384,
                &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384],
            ),
            (
                SignatureScheme::ECDSA_NISTP256_SHA256,
                &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256],
            ),
            (SignatureScheme::ED25519, &[alg::ED25519]),
            (
                SignatureScheme::RSA_PSS_SHA512,
                &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
            ),
            (
                SignatureScheme::RSA_PSS_SHA384,
                &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
            ),
            (
                SignatureScheme::RSA_PSS_SHA256,
                &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
            ),
            (
                SignatureScheme::RSA_PKCS1_SHA512,
                &[alg::RSA_PKCS1_2048_8192_SHA512],
            ),
            (
                SignatureScheme::RSA_PKCS1_SHA384,
                &[alg::RSA_PKCS1_2048_8192_SHA384],
            ),
            (
                SignatureScheme::RSA_PKCS1_SHA256,
                &[alg::RSA_PKCS1_2048_8192_SHA256],
            ),
        ],
    }
};

/// Randomness for the handshakes from the operating system (getrandom(2)),
/// as *ring*'s own.
#[derive(Debug)]
struct OsRandom;

impl SecureRandom for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        getrandom::fill(buf).map_err(|_| GetRandomFailed)
    }
}

/// A key provider for a client that never presents a certificate.
#[derive(Debug)]
struct NoClientKeys;

impl KeyProvider for NoClientKeys {
    fn load_private_key(
        &self,
        _key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        Err(rustls::Error::General(
            "skewguard presents no client certificate".into(),
        ))
    }
}

/// A verifier that checks at `now` and finishes date-exempted handshakes,
/// leaving their [`DateExemption`] in the returned slot.
pub fn verifier(
    ca_file: Option<&Path>,
    now: UnixNanos,
    provider: Arc<CryptoProvider>,
) -> Result<(Arc<dyn ServerCertVerifier>, ExemptionSlot), SourceError> {
    let roots = root_store(ca_file)?;
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| SourceError::Tls(format!("cannot build the certificate verifier: {e}")))?;
    let slot = ExemptionSlot::default();
    let verifier = Arc::new(ValidityAwareVerifier {
        inner,
        now: unix_time(now),
        exemption: slot.clone(),
    });
    Ok((verifier, slot))
}

/// Builds the client configuration for one measurement whose realtime anchor
/// is `now`, and the slot where a date-exempted handshake leaves its
/// exemption: a caller must look there after the handshake, since such a
/// handshake succeeds although the certificate is outside its validity.
///
/// Trusts the compiled-in webpki roots plus every certificate in `ca_file`
/// (PEM). Offers only HTTP/1.1 by ALPN, the one protocol the source speaks.
pub fn client_config(
    ca_file: Option<&Path>,
    now: UnixNanos,
) -> Result<(ClientConfig, ExemptionSlot), SourceError> {
    let provider = provider();
    let (verifier, slot) = verifier(ca_file, now, provider.clone())?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SourceError::Tls(format!("no usable protocol version: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, slot))
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
/// and double-checks validity-period failures at the edge of the period: a
/// certificate sound there passes, with its exemption left in the slot.
#[derive(Debug)]
struct ValidityAwareVerifier {
    inner: Arc<WebPkiServerVerifier>,
    now: UnixTime,
    exemption: ExemptionSlot,
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
        let gap = |a: UnixTime, b: UnixTime| a.as_secs().saturating_sub(b.as_secs()) as f64;
        let (edge, at_least, local_behind) = match &first {
            Err(rustls::Error::InvalidCertificate(CertificateError::ExpiredContext {
                not_after,
                time,
            })) => (*not_after, gap(*time, *not_after), false),
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext {
                not_before,
                time,
            })) => (*not_before, gap(*not_before, *time), true),
            _ => return first,
        };
        match check(edge) {
            // Sound apart from the time: finish the handshake; the caller must
            // have the server vouch for the certificate with its own time.
            Ok(verified) => {
                let exemption = DateExemption {
                    at_least,
                    local_behind,
                    end_entity: end_entity.clone().into_owned(),
                    intermediates: intermediates
                        .iter()
                        .map(|c| c.clone().into_owned())
                        .collect(),
                    server_name: server_name.to_owned(),
                    inner: self.inner.clone(),
                };
                match self.exemption.lock() {
                    Ok(mut slot) => *slot = Some(exemption),
                    Err(_) => return first,
                }
                Ok(verified)
            }
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
            "the server's certificate is not signed by a trusted authority (UnknownIssuer): {MITM}, or a private CA missing from SKEWGUARD_CA_FILE"
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
            "the server presents a CA certificate as its own (CaUsedAsEndEntity): it needs a leaf (CA:FALSE) signed by a CA, and SKEWGUARD_CA_FILE the CA".to_string()
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
