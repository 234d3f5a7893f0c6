//! The one crypto provider of every TLS client here: *ring*'s, trimmed to the
//! AES-GCM suites, with randomness from the operating system.

use std::sync::Arc;

use rustls::crypto::{
    CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, WebPkiSupportedAlgorithms,
};
use rustls::SignatureScheme;

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
