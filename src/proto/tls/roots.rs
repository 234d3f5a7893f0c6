//! What a TLS client trusts: the compiled-in webpki roots, `SKEWGUARD_CA_FILE`
//! (whose certificates a server may also be pinned to), and OpenSSL's
//! `SSL_CERT_FILE` and `SSL_CERT_DIR`, each kept as a store of its own.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use crate::core::sample::{QuerySettings, SourceError, TrustStore};

/// What a TLS client trusts: the compiled-in webpki roots, and those of the
/// settings and OpenSSL's variables, each store kept apart so a verified
/// chain can be traced to the store that vouched for it.
#[derive(Clone)]
pub struct Trust {
    /// Every root of every store: what chains are verified against.
    pub(super) all: RootCertStore,
    /// The stores one by one, in the order a chain is attributed to them.
    pub(super) stores: Vec<(TrustStore, RootCertStore)>,
    /// The certificates of `SKEWGUARD_CA_FILE`, DER: a server presenting one
    /// of them as its own is pinned to it.
    pub(super) pins: Vec<CertificateDer<'static>>,
}

/// Largest `SSL_CERT_FILE` read (Debian's whole bundle is about 220 KiB).
const MAX_BUNDLE: u64 = 4 * 1024 * 1024;

/// Largest certificate file of `SSL_CERT_DIR` read.
const MAX_DIR_ENTRY: u64 = 256 * 1024;

impl Trust {
    /// Whether `other` trusts exactly what this does, store by store.
    pub fn same_as(&self, other: &Trust) -> bool {
        self.pins == other.pins
            && self.stores.len() == other.stores.len()
            && self
                .stores
                .iter()
                .zip(&other.stores)
                .all(|((a, ra), (b, rb))| a == b && ra.roots == rb.roots)
    }

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
