//! The certificate check at the measurement's own time, and the date
//! exemption it leaves when a certificate is sound but for its validity
//! period by the local clock (see the [module](super) for the reasoning).

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::roots::Trust;
use crate::core::sample::{SourceError, TrustStore};
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

/// Where the verifier of a handshake leaves the store that vouched for the
/// server's certificate.
pub type StoreSlot = Arc<Mutex<Option<TrustStore>>>;

/// Unix time for the certificate check; a local clock before 1970 checks as 1970,
/// which still fails every real certificate as "not yet valid".
pub(super) fn unix_time(now: UnixNanos) -> UnixTime {
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
pub(super) struct ValidityAwareVerifier {
    inner: Arc<WebPkiServerVerifier>,
    /// The measurement's realtime anchor; a verifier kept between
    /// measurements (for TLS session resumption) is set to each one's.
    now: Mutex<UnixTime>,
    exemption: ExemptionSlot,
    /// One verifier per store, to say which one vouched for a chain.
    stores: Vec<(TrustStore, Arc<WebPkiServerVerifier>)>,
    pins: Vec<CertificateDer<'static>>,
    verified_by: StoreSlot,
}

impl ValidityAwareVerifier {
    /// Checks from now on at `now`, with the slots emptied: a verifier kept
    /// for the next measurement.
    pub(super) fn set_now(&self, now: UnixNanos) {
        if let Ok(mut at) = self.now.lock() {
            *at = unix_time(now);
        }
        self.clear_slots();
    }

    /// Empties the slots, keeping the time.
    pub(super) fn clear_slots(&self) {
        take_exemption(&self.exemption);
        if let Ok(mut by) = self.verified_by.lock() {
            *by = None;
        }
    }

    /// A verifier over `trust` that checks at `now`, with the slots where it
    /// leaves a handshake's [`DateExemption`] and the store that vouched.
    pub(super) fn new(
        trust: Trust,
        now: UnixNanos,
        provider: Arc<CryptoProvider>,
    ) -> Result<(Self, ExemptionSlot, StoreSlot), SourceError> {
        let build = |roots: RootCertStore| {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| {
                    SourceError::Tls(format!("cannot build the certificate verifier: {e}"))
                })
        };
        let inner = build(trust.all)?;
        let stores = trust
            .stores
            .into_iter()
            .map(|(store, roots)| Ok((store, build(roots)?)))
            .collect::<Result<Vec<_>, SourceError>>()?;
        let slot = ExemptionSlot::default();
        let store = StoreSlot::default();
        let verifier = ValidityAwareVerifier {
            inner,
            now: Mutex::new(unix_time(now)),
            exemption: slot.clone(),
            stores,
            pins: trust.pins,
            verified_by: store.clone(),
        };
        Ok((verifier, slot, store))
    }

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
        let now = self
            .now
            .lock()
            .map(|t| *t)
            .map_err(|_| rustls::Error::General("certificate check time unavailable".into()))?;
        let first = check(now);
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
                self.attribute(end_entity, intermediates, server_name, now);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_before_1970_check_as_1970() {
        assert_eq!(unix_time(-5 * NANOS_PER_SEC).as_secs(), 0);
        assert_eq!(unix_time(7 * NANOS_PER_SEC + 9).as_secs(), 7);
    }
}
