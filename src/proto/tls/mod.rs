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
//!
//! One purpose per file: [`roots`] reads the trust stores (`SKEWGUARD_CA_FILE`
//! and its pins, `SSL_CERT_FILE`, `SSL_CERT_DIR`), [`verify`] holds the
//! validity-aware verifier and its [`DateExemption`], [`provider`] the crypto
//! provider, [`error`] the words for a failed handshake or certificate.

mod error;
mod provider;
mod roots;
mod verify;

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::ClientConfig;

use crate::core::sample::{QuerySettings, SourceError, TrustStore};
use crate::os::clock::UnixNanos;

pub use error::handshake_error;
pub use provider::provider;
pub use roots::Trust;
pub use verify::{take_exemption, DateExemption, ExemptionSlot, StoreSlot};

use verify::ValidityAwareVerifier;

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
    let (verifier, slot, store) = ValidityAwareVerifier::new(trust, now, provider)?;
    Ok((Arc::new(verifier), slot, store))
}

/// The TLS client of one `https://` source, kept between its measurements so
/// that a new connection can resume the TLS session of an earlier one: rustls
/// resumes only under the very configuration and verifier that made the
/// session, so both live here, with a small session cache.
///
/// A resumed handshake (and a connection kept open from an earlier
/// measurement) shows no certificate to the verifier, so the caller has the
/// server's chain checked again at each measurement's own time with
/// [`Client::reverify`]: the same check, the same [`DateExemption`] and the
/// same errors as a full handshake at that time.
///
/// Trusts the stores [`Trust::load`] reads (read again for each measurement:
/// when they change, the client is replaced and no session of the old trust
/// is resumed). Offers only HTTP/1.1 by ALPN, the one protocol the source speaks.
pub struct Client {
    config: Arc<ClientConfig>,
    verifier: Arc<ValidityAwareVerifier>,
    exemption: ExemptionSlot,
    store: StoreSlot,
    trust: Trust,
}

/// Sessions kept per client: one server name, a few tickets (TLS 1.3 servers
/// send two per handshake, each good for one resumption).
const SESSIONS: usize = 4;

impl Client {
    fn trusting(trust: Trust, now: UnixNanos) -> Result<Client, SourceError> {
        let provider = provider();
        let (verifier, exemption, store) =
            ValidityAwareVerifier::new(trust.clone(), now, provider.clone())?;
        let verifier = Arc::new(verifier);
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SourceError::Tls(format!("no usable protocol version: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.resumption = Resumption::store(Arc::new(ClientSessionMemoryCache::new(SESSIONS)));
        Ok(Client {
            config: Arc::new(config),
            verifier,
            exemption,
            store,
            trust,
        })
    }

    /// The client kept in `kept`, made ready for a measurement at `now`: its
    /// certificate checks at `now`, its slots empty. The stores are read
    /// again; a new client replaces the kept one when they changed.
    pub fn renew<'a>(
        kept: &'a mut Option<Client>,
        settings: &QuerySettings,
        now: UnixNanos,
    ) -> Result<&'a Client, SourceError> {
        let trust = Trust::load(settings)?;
        let client = match kept.take() {
            Some(client) if client.trust.same_as(&trust) => {
                client.verifier.set_now(now);
                client
            }
            _ => Client::trusting(trust, now)?,
        };
        Ok(kept.insert(client))
    }

    /// The configuration to connect with (its session cache included).
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// Checks the certificate chain of a kept connection or a resumed session
    /// (`chain`: the server's certificate first) for `name` at this
    /// measurement's time, exactly as a full handshake would: a date
    /// exemption and the store that vouched land in the slots.
    pub fn reverify(
        &self,
        chain: &[CertificateDer<'static>],
        name: &ServerName<'_>,
    ) -> Result<(), SourceError> {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err(SourceError::Tls(
                "the kept TLS session has no server certificate to check again".into(),
            ));
        };
        // The verifier checks at its own time (the measurement's anchor).
        let ignored = UnixTime::since_unix_epoch(std::time::Duration::ZERO);
        self.verifier
            .verify_server_cert(end_entity, intermediates, name, &[], ignored)
            .map(|_| ())
            .map_err(|e| handshake_error(&std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
    }

    /// What the latest check left: a date exemption, if the certificate was
    /// outside its validity by the local clock (see [`take_exemption`]).
    pub fn take_exemption(&self) -> Option<DateExemption> {
        take_exemption(&self.exemption)
    }

    /// Empties the slots: what an earlier check left (on a kept connection
    /// that then turned out closed) must not stand for the next handshake's.
    pub fn forget_checks(&self) {
        self.verifier.clear_slots();
    }

    /// The store that vouched for the certificate at the latest check.
    pub fn verified_by(&self) -> Option<TrustStore> {
        self.store.lock().ok().and_then(|g| *g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::clock::NANOS_PER_SEC;
    use rustls::client::danger::ServerCertVerified;
    use rustls::CertificateError;
    use std::path::Path;
    use verify::unix_time;

    fn ca_file(path: &Path) -> QuerySettings {
        QuerySettings {
            ca_file: Some(path.to_path_buf()),
            ..QuerySettings::default()
        }
    }

    #[test]
    fn unreadable_or_empty_ca_files_are_named() {
        let missing = Client::renew(&mut None, &ca_file(Path::new("/nonexistent/ca.pem")), 0)
            .err()
            .unwrap();
        assert!(
            missing.to_string().contains("/nonexistent/ca.pem"),
            "{missing}"
        );
        let dir = std::env::temp_dir().join(format!("skewguard-empty-ca-{}", std::process::id()));
        std::fs::write(&dir, "not a certificate\n").unwrap();
        let empty = Client::renew(&mut None, &ca_file(&dir), 0).err().unwrap();
        let _ = std::fs::remove_file(&dir);
        assert!(empty.to_string().contains("no PEM certificate"), "{empty}");
        assert!(Client::renew(
            &mut None,
            &QuerySettings::default(),
            1_700_000_000 * NANOS_PER_SEC
        )
        .is_ok());
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

    /// A self-signed CA: its certificate and the issuer to sign leaves with.
    fn test_ca() -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        (ca, rcgen::Issuer::new(params, key))
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
        let (ca, issuer) = test_ca();
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
    fn a_kept_client_checks_a_kept_chain_again_at_each_measurements_time() {
        let dir = scratch("kept");
        let (ca, issuer) = test_ca();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        leaf.not_before = rcgen::date_time_ymd(2026, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(2027, 1, 1);
        let leaf = leaf.signed_by(&leaf_key, &issuer).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        let settings = ca_file(&dir.join("ca.pem"));
        let chain = vec![leaf.der().clone()];
        let name = ServerName::try_from("localhost").unwrap();
        let inside = 1_780_000_000 * NANOS_PER_SEC; // 2026-05
        let after = 1_830_000_000 * NANOS_PER_SEC; // 2027-12

        let mut kept = None;
        let client = Client::renew(&mut kept, &settings, inside).unwrap();
        let config = client.config();
        client.reverify(&chain, &name).unwrap();
        assert!(client.take_exemption().is_none());
        assert_eq!(client.verified_by(), Some(TrustStore::CaFile));

        // The next measurement, the local clock past notAfter: the same
        // client (its sessions resumable), and the chain is date-exempted,
        // as a full handshake at that time would leave it.
        let client = Client::renew(&mut kept, &settings, after).unwrap();
        assert!(
            Arc::ptr_eq(&config, &client.config()),
            "kept while trust is unchanged"
        );
        assert_eq!(
            client.verified_by(),
            None,
            "slots emptied for the new measurement"
        );
        client.reverify(&chain, &name).unwrap();
        let x = client.take_exemption().expect("date-exempted");
        assert!(!x.local_behind && x.at_least > 86_400.0 * 300.0, "{x:?}");
        assert!(x.valid_at(1_790_000_000) && !x.valid_at(1_830_000_000));
        // Another name, or a store that no longer holds the CA: refused.
        let other = ServerName::try_from("example.com").unwrap();
        assert!(matches!(
            client.reverify(&chain, &other),
            Err(SourceError::Verification(_))
        ));
        assert!(client.reverify(&[], &name).is_err());
        let (other_pem, _) = self_signed();
        std::fs::write(dir.join("ca.pem"), other_pem).unwrap();
        let client = Client::renew(&mut kept, &settings, inside).unwrap();
        assert!(
            !Arc::ptr_eq(&config, &client.config()),
            "new trust, new client"
        );
        assert!(matches!(
            client.reverify(&chain, &name),
            Err(SourceError::Verification(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
