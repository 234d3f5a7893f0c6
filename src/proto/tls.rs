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

use crate::core::sample::{QuerySettings, SourceError, TrustStore};
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
    /// The certificate is pinned: webpki's refusal of it as a CA is no fault.
    pinned: bool,
}

impl DateExemption {
    /// Whether the whole chain (and name) verifies at `unix_secs`: the server's
    /// own time vouches for the certificate.
    pub fn valid_at(&self, unix_secs: i64) -> bool {
        let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            u64::try_from(unix_secs).unwrap_or(0),
        ));
        match self.inner.verify_server_cert(
            &self.end_entity,
            &self.intermediates,
            &self.server_name,
            &[],
            at,
        ) {
            Ok(_) => true,
            // Refused as a CA only after its dates held (see `pinned`).
            Err(e) => self.pinned && ca_as_end_entity(&e),
        }
    }
}

/// Reads (and clears) what the latest handshake left in `slot`.
pub fn take_exemption(slot: &ExemptionSlot) -> Option<DateExemption> {
    slot.lock().ok().and_then(|mut g| g.take())
}

/// What a TLS client trusts: the compiled-in webpki roots, and those of the
/// settings and OpenSSL's variables, each store kept apart so a verified
/// chain can be traced to the store that vouched for it.
pub struct Trust {
    /// Every root of every store: what chains are verified against.
    all: RootCertStore,
    /// The stores one by one, in the order a chain is attributed to them.
    stores: Vec<(TrustStore, RootCertStore)>,
    /// The certificates of `SKEWGUARD_CA_FILE`, DER: a server presenting one
    /// of them as its own is pinned to it.
    pins: Vec<CertificateDer<'static>>,
}

/// Largest `SSL_CERT_FILE` read (Debian's whole bundle is about 220 KiB).
const MAX_BUNDLE: u64 = 4 * 1024 * 1024;

/// Largest certificate file of `SSL_CERT_DIR` read.
const MAX_DIR_ENTRY: u64 = 256 * 1024;

impl Trust {
    /// Reads the stores `settings` name: `ca_file` (every certificate must be
    /// usable, as when the setting was checked), `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` (certificates webpki cannot use are skipped, as a system
    /// bundle may hold some; a store with none at all is an error naming it).
    pub fn load(settings: &QuerySettings) -> Result<Trust, SourceError> {
        let mut trust = Trust {
            all: RootCertStore::empty(),
            stores: Vec::new(),
            pins: Vec::new(),
        };
        if let Some(path) = settings.ca_file.as_deref() {
            let mut roots = RootCertStore::empty();
            trust.pins = add_pem_roots(&mut roots, path)?;
            trust.stores.push((TrustStore::CaFile, roots));
        }
        trust.stores.push((
            TrustStore::BuiltIn,
            RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        ));
        if let Some(path) = settings.ssl_cert_file.as_deref() {
            let pem = read_foreign(path, MAX_BUNDLE).map_err(|why| {
                SourceError::Tls(format!("SSL_CERT_FILE={}: {why}", path.display()))
            })?;
            let roots = parsable_roots(&[pem]);
            if roots.is_empty() {
                return Err(SourceError::Tls(format!(
                    "SSL_CERT_FILE={} holds no usable PEM certificate",
                    path.display()
                )));
            }
            trust.stores.push((TrustStore::SslCertFile, roots));
        }
        if let Some(dirs) = settings.ssl_cert_dir.as_deref() {
            let roots = parsable_roots(&hashed_files(dirs));
            if roots.is_empty() {
                return Err(SourceError::Tls(format!(
                    "SSL_CERT_DIR={dirs} holds no usable certificate under a hashed name (HASH.0, as `openssl rehash DIR` makes them)"
                )));
            }
            trust.stores.push((TrustStore::SslCertDir, roots));
        }
        for (_, roots) in &trust.stores {
            trust.all.roots.extend(roots.roots.iter().cloned());
        }
        Ok(trust)
    }
}

/// The contents of the files of `dirs` (OpenSSL's `SSL_CERT_DIR`, directories
/// separated by `:`) whose names are hashed as OpenSSL looks them up:
/// eight hex digits, a dot and a number (`5ed36f99.0`). Such names are
/// usually links (`openssl rehash`), which are followed; what they lead to
/// must be a regular file.
fn hashed_files(dirs: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in dirs.split(':').filter(|d| !d.is_empty()) {
        // As OpenSSL: a directory of the list that is not there is passed over.
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::debug!(dir, error = %e, "SSL_CERT_DIR directory skipped");
                continue;
            }
        };
        let mut names: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_hashed_name)
            })
            .collect();
        names.sort();
        for path in names {
            match read_foreign(&path, MAX_DIR_ENTRY) {
                Ok(bytes) => out.push(bytes),
                Err(why) => {
                    tracing::debug!(path = %path.display(), %why, "SSL_CERT_DIR entry skipped")
                }
            }
        }
    }
    out
}

/// `HASH.N` as `openssl rehash` names certificates (not `HASH.rN`, a CRL).
fn is_hashed_name(name: &str) -> bool {
    let Some((hash, n)) = name.split_once('.') else {
        return false;
    };
    hash.len() == 8
        && hash.bytes().all(|b| b.is_ascii_hexdigit())
        && !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
}

/// A file another party placed, read the hardened way after following its
/// links (system stores are mostly links): a regular file, at most `limit` bytes.
fn read_foreign(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let real = std::fs::canonicalize(path).map_err(|e| format!("cannot open it: {e}"))?;
    match crate::os::file::read_regular(&real, limit + 1) {
        Ok(Some(bytes)) if bytes.len() as u64 > limit => {
            Err(format!("it is larger than {} KiB", limit / 1024))
        }
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err("there is no file".into()),
        Err(why) => Err(why.to_string()),
    }
}

/// Every certificate of the PEM texts that webpki can use as a root.
fn parsable_roots(pems: &[Vec<u8>]) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let certs = pems
        .iter()
        .flat_map(|pem| CertificateDer::pem_slice_iter(pem).filter_map(Result::ok));
    roots.add_parsable_certificates(certs);
    roots
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

/// Where the verifier of a handshake leaves the store that vouched for the
/// server's certificate.
pub type StoreSlot = Arc<Mutex<Option<TrustStore>>>;

/// A verifier that checks at `now` and finishes date-exempted handshakes,
/// leaving their [`DateExemption`] in the returned slot.
pub fn verifier(
    settings: &QuerySettings,
    now: UnixNanos,
    provider: Arc<CryptoProvider>,
) -> Result<(Arc<dyn ServerCertVerifier>, ExemptionSlot), SourceError> {
    verifier_tracing(settings, now, provider).map(|(v, slot, _)| (v, slot))
}

/// [`verifier`], and the slot where it leaves the store that vouched for the
/// certificate of a handshake it passed.
pub fn verifier_tracing(
    settings: &QuerySettings,
    now: UnixNanos,
    provider: Arc<CryptoProvider>,
) -> Result<(Arc<dyn ServerCertVerifier>, ExemptionSlot, StoreSlot), SourceError> {
    let trust = Trust::load(settings)?;
    let build = |roots: RootCertStore| {
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| SourceError::Tls(format!("cannot build the certificate verifier: {e}")))
    };
    let inner = build(trust.all)?;
    let stores = trust
        .stores
        .into_iter()
        .map(|(store, roots)| Ok((store, build(roots)?)))
        .collect::<Result<Vec<_>, SourceError>>()?;
    let slot = ExemptionSlot::default();
    let store = StoreSlot::default();
    let verifier = Arc::new(ValidityAwareVerifier {
        inner,
        now: unix_time(now),
        exemption: slot.clone(),
        stores,
        pins: trust.pins,
        verified_by: store.clone(),
    });
    Ok((verifier, slot, store))
}

/// Builds the client configuration for one measurement whose realtime anchor
/// is `now`, the slot where a date-exempted handshake leaves its
/// exemption (a caller must look there after the handshake, since such a
/// handshake succeeds although the certificate is outside its validity),
/// and the slot that names the store that vouched for the certificate.
///
/// Trusts the stores [`Trust::load`] reads. Offers only HTTP/1.1 by ALPN,
/// the one protocol the source speaks.
pub fn client_config(
    settings: &QuerySettings,
    now: UnixNanos,
) -> Result<(ClientConfig, ExemptionSlot, StoreSlot), SourceError> {
    let provider = provider();
    let (verifier, slot, store) = verifier_tracing(settings, now, provider.clone())?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SourceError::Tls(format!("no usable protocol version: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, slot, store))
}

/// Adds every certificate of the PEM file `path` to `roots`, and returns them
/// (the pins).
fn add_pem_roots(
    roots: &mut RootCertStore,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, SourceError> {
    let shown = path.display();
    // Read once, small file: a blocking read here costs less than a thread hop.
    let pem = std::fs::read(path)
        .map_err(|e| SourceError::Tls(format!("cannot read CA file {shown}: {e}")))?;
    let mut added = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert =
            cert.map_err(|e| SourceError::Tls(format!("CA file {shown} is not valid PEM: {e}")))?;
        added.push(cert.clone());
        roots.add(cert).map_err(|e| {
            SourceError::Tls(format!(
                "CA file {shown} holds an unusable certificate: {e}"
            ))
        })?;
    }
    if added.is_empty() {
        return Err(SourceError::Tls(format!(
            "CA file {shown} holds no PEM certificate"
        )));
    }
    Ok(added)
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
///
/// A certificate of `SKEWGUARD_CA_FILE` that the server presents as its own
/// is pinned: it passes even when it is a CA (`CA:TRUE`, as `openssl req
/// -x509` makes them), see [`ValidityAwareVerifier::pinned`].
#[derive(Debug)]
struct ValidityAwareVerifier {
    inner: Arc<WebPkiServerVerifier>,
    now: UnixTime,
    exemption: ExemptionSlot,
    /// One verifier per store, to say which one vouched for a chain.
    stores: Vec<(TrustStore, Arc<WebPkiServerVerifier>)>,
    pins: Vec<CertificateDer<'static>>,
    verified_by: StoreSlot,
}

impl ValidityAwareVerifier {
    /// Whether the server presented a certificate of `SKEWGUARD_CA_FILE`
    /// itself, byte for byte.
    fn is_pinned(&self, end_entity: &CertificateDer<'_>) -> bool {
        self.pins.iter().any(|p| p.as_ref() == end_entity.as_ref())
    }

    /// A pinned certificate that webpki refused only for being a CA: the
    /// server showed, byte for byte, a certificate the operator named, and
    /// the handshake proves it holds its key. webpki checks the validity
    /// dates before the basic constraints, so this refusal means the dates
    /// held at the time checked (and outside them the date-exempted handshake
    /// applies as to any certificate). The host name is still checked, as
    /// curl does with `--cacert`, so a pin cannot pass for another name.
    fn pinned(
        &self,
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|e| {
            rustls::Error::General(format!("pinned certificate does not parse: {e}"))
        })?;
        cert.verify_is_valid_for_subject_name(server_name)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))?;
        self.vouched(TrustStore::Pinned);
        Ok(ServerCertVerified::assertion())
    }

    /// Names the first store that vouches for the chain at `at` (the chain
    /// verified against all of them together).
    fn attribute(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        at: UnixTime,
    ) {
        let by = self.stores.iter().find(|(_, v)| {
            v.verify_server_cert(end_entity, intermediates, server_name, &[], at)
                .is_ok()
        });
        if self.is_pinned(end_entity) {
            self.vouched(TrustStore::Pinned);
        } else if let Some((store, _)) = by {
            self.vouched(*store);
        }
    }

    fn vouched(&self, store: TrustStore) {
        if let Ok(mut slot) = self.verified_by.lock() {
            *slot = Some(store);
        }
    }
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
            let result = self.inner.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                at,
            );
            match result {
                Err(e) if ca_as_end_entity(&e) && self.is_pinned(end_entity) => {
                    self.pinned(end_entity, server_name)
                }
                other => other,
            }
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
            Ok(_) => {
                self.attribute(end_entity, intermediates, server_name, self.now);
                return first;
            }
            _ => return first,
        };
        match check(edge) {
            // Sound apart from the time: finish the handshake; the caller must
            // have the server vouch for the certificate with its own time.
            Ok(verified) => {
                let exemption = DateExemption {
                    at_least,
                    local_behind,
                    pinned: self.is_pinned(end_entity),
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
                self.attribute(end_entity, intermediates, server_name, edge);
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

/// webpki's refusal of a CA certificate as the server's own.
fn ca_as_end_entity(e: &rustls::Error) -> bool {
    matches!(e, rustls::Error::InvalidCertificate(CertificateError::Other(o))
        if format!("{o:?}").contains("CaUsedAsEndEntity"))
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

    fn ca_file(path: &Path) -> QuerySettings {
        QuerySettings {
            ca_file: Some(path.to_path_buf()),
            ..QuerySettings::default()
        }
    }

    #[test]
    fn unreadable_or_empty_ca_files_are_named() {
        let missing = client_config(&ca_file(Path::new("/nonexistent/ca.pem")), 0).unwrap_err();
        assert!(
            missing.to_string().contains("/nonexistent/ca.pem"),
            "{missing}"
        );
        let dir = std::env::temp_dir().join(format!("skewguard-empty-ca-{}", std::process::id()));
        std::fs::write(&dir, "not a certificate\n").unwrap();
        let empty = client_config(&ca_file(&dir), 0).unwrap_err();
        let _ = std::fs::remove_file(&dir);
        assert!(empty.to_string().contains("no PEM certificate"), "{empty}");
        assert!(client_config(&QuerySettings::default(), 1_700_000_000 * NANOS_PER_SEC).is_ok());
    }

    /// A self-signed `localhost` certificate with `CA:TRUE`, as `openssl req
    /// -x509` makes them, or a CA and a leaf it signed: (certificate PEM, DER).
    fn self_signed() -> (String, CertificateDer<'static>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), cert.der().clone())
    }

    fn scratch(label: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "skewguard-tls-{label}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn check(
        settings: &QuerySettings,
        ee: &CertificateDer<'_>,
        name: &str,
    ) -> (
        Result<ServerCertVerified, rustls::Error>,
        Option<TrustStore>,
    ) {
        let now = 1_800_000_000 * NANOS_PER_SEC;
        let (v, _, store) = verifier_tracing(settings, now, provider()).unwrap();
        let name = ServerName::try_from(name.to_string()).unwrap();
        let at = unix_time(now);
        let result = v.verify_server_cert(ee, &[], &name, &[], at);
        let store = *store.lock().unwrap();
        (result, store)
    }

    #[test]
    fn a_pinned_certificate_verifies_for_its_name_only_and_no_other_self_signed_one() {
        let dir = scratch("pin");
        let (pem, der) = self_signed();
        let (_, other) = self_signed();
        std::fs::write(dir.join("pin.pem"), pem).unwrap();
        let settings = ca_file(&dir.join("pin.pem"));
        let (ok, by) = check(&settings, &der, "localhost");
        assert!(ok.is_ok(), "{ok:?}");
        assert_eq!(by, Some(TrustStore::Pinned));
        let (wrong_name, _) = check(&settings, &der, "example.com");
        assert_eq!(
            wrong_name.unwrap_err(),
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
        );
        let (stranger, by) = check(&settings, &other, "localhost");
        assert!(stranger.is_err(), "another self-signed certificate passed");
        assert_eq!(by, None);
        // A pinned certificate outside its dates is no exception: the
        // date-exempted handshake applies, and the server's time must fall
        // inside them.
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let old = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("old.pem"), old.pem()).unwrap();
        let (v, slot, store) = verifier_tracing(
            &ca_file(&dir.join("old.pem")),
            1_800_000_000 * NANOS_PER_SEC,
            provider(),
        )
        .unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let r = v.verify_server_cert(old.der(), &[], &name, &[], unix_time(0));
        assert!(r.is_ok(), "{r:?}");
        let x = take_exemption(&slot).expect("date-exempted");
        assert!(!x.local_behind && x.at_least > 86_400.0 * 365.0);
        assert!(
            x.valid_at(1_600_000_000),
            "inside its dates, by the server's time"
        );
        assert!(!x.valid_at(1_700_000_000), "outside them");
        assert_eq!(*store.lock().unwrap(), Some(TrustStore::Pinned));
        // Unpinned, the same certificate is what webpki refuses.
        let (unpinned, _) = check(&QuerySettings::default(), &der, "localhost");
        assert!(unpinned.is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ssl_cert_file_and_hashed_ssl_cert_dir_are_stores_of_their_own() {
        let dir = scratch("stores");
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        let issuer = rcgen::Issuer::new(params, key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        std::fs::write(dir.join("bundle.pem"), ca.pem()).unwrap();
        let hashed = dir.join("hashed");
        std::fs::create_dir(&hashed).unwrap();
        // A link under a hashed name, as `openssl rehash` makes; other names are not read.
        std::os::unix::fs::symlink(dir.join("bundle.pem"), hashed.join("0a1b2c3d.0")).unwrap();
        let file = QuerySettings {
            ssl_cert_file: Some(dir.join("bundle.pem")),
            ..QuerySettings::default()
        };
        let (ok, by) = check(&file, leaf.der(), "localhost");
        assert!(ok.is_ok(), "{ok:?}");
        assert_eq!(by, Some(TrustStore::SslCertFile));
        // A directory of the list that is not there is passed over, as OpenSSL does.
        let in_dir = QuerySettings {
            ssl_cert_dir: Some(format!("/nonexistent:{}", hashed.display())),
            ..QuerySettings::default()
        };
        let (ok, by) = check(&in_dir, leaf.der(), "localhost");
        assert!(ok.is_ok(), "{ok:?}");
        assert_eq!(by, Some(TrustStore::SslCertDir));
        let (none, _) = check(&QuerySettings::default(), leaf.der(), "localhost");
        assert!(none.is_err());
        std::fs::rename(hashed.join("0a1b2c3d.0"), hashed.join("ca.pem")).unwrap();
        let err = Trust::load(&in_dir).err().unwrap().to_string();
        assert!(err.contains("hashed name"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn hashed_names_are_openssl_s() {
        for (name, hashed) in [
            ("5ed36f99.0", true),
            ("5ED36F99.12", true),
            ("5ed36f99.r0", false),
            ("5ed36f9.0", false),
            ("ca.pem", false),
            ("5ed36f99.", false),
        ] {
            assert_eq!(is_hashed_name(name), hashed, "{name}");
        }
    }

    #[test]
    fn times_before_1970_check_as_1970() {
        assert_eq!(unix_time(-5 * NANOS_PER_SEC).as_secs(), 0);
        assert_eq!(unix_time(7 * NANOS_PER_SEC + 9).as_secs(), 7);
    }
}
