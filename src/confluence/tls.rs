//! Trust for sites behind a private PKI: extra CA certificates added to the
//! built-in roots, and recognising a failed certificate check so the user is
//! told to fix the bundle rather than wait for a retry that cannot succeed.

use std::fmt;

/// CA certificates a site's certificate may chain to, in addition to the
/// system and built-in roots. Built only from PEM that holds at least one
/// certificate, so a bundle that silently trusts nothing cannot exist.
#[derive(Clone)]
pub struct CaBundle {
    certs: Vec<reqwest::Certificate>,
    /// A digest of the PEM, so a changed bundle rebuilds the cached client.
    digest: u64,
}

/// Why a CA bundle could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaBundleError {
    #[error("it is not valid PEM: {0}")]
    Unparsable(String),
    #[error("it holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)")]
    Empty,
}

impl CaBundle {
    pub fn from_pem(pem: &[u8]) -> Result<CaBundle, CaBundleError> {
        // reqwest skips blocks that are not certificates; an input with no
        // certificate block at all is a mistake worth reporting.
        let text = String::from_utf8_lossy(pem);
        if !text.contains("-----BEGIN CERTIFICATE-----") {
            return Err(CaBundleError::Empty);
        }
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| CaBundleError::Unparsable(innermost(&e)))?;
        if certs.is_empty() {
            return Err(CaBundleError::Empty);
        }
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        pem.hash(&mut h);
        Ok(CaBundle {
            certs,
            digest: h.finish(),
        })
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    pub fn digest(&self) -> u64 {
        self.digest
    }

    pub(crate) fn certificates(&self) -> &[reqwest::Certificate] {
        &self.certs
    }
}

impl PartialEq for CaBundle {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
    }
}

impl fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaBundle({} certificates)", self.certs.len())
    }
}

/// The system's root certificates (`SSL_CERT_FILE`, `SSL_CERT_DIR`, else
/// the platform's store), read and checked once per process. reqwest would
/// read and parse them again for every client it builds (~2 ms, ~5 ms the
/// first time), and a new site's first sync waits for its client.
pub fn system_roots() -> &'static [reqwest::Certificate] {
    static ROOTS: std::sync::OnceLock<Vec<reqwest::Certificate>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(load_system_roots)
}

/// Like reqwest's own loading: unreadable files and certificates rustls
/// cannot use as a trust anchor are skipped, so one bad system certificate
/// cannot fail every client.
fn load_system_roots() -> Vec<reqwest::Certificate> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!(error = %e, "skipping unreadable system root certificates");
    }
    let mut check = rustls::RootCertStore::empty();
    found
        .certs
        .into_iter()
        .filter(|der| check.add(der.clone()).is_ok())
        .filter_map(|der| reqwest::Certificate::from_der(&der).ok())
        .collect()
}

/// The certificate problem behind a failed request, if that is what it was:
/// rustls' own description (e.g. "invalid peer certificate: UnknownIssuer").
pub(crate) fn certificate_failure(e: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        // `io::Error::source` skips the error it wraps, and hyper and
        // tokio-rustls nest io errors: unwrap each layer.
        let mut layer = s;
        loop {
            if let Some(r) = tls_error(layer) {
                return Some(r);
            }
            match layer
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(inner) => layer = inner,
                None => break,
            }
        }
        source = s.source();
    }
    None
}

fn tls_error(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    use rustls::Error as R;
    match e.downcast_ref::<R>()? {
        err @ (R::InvalidCertificate(_)
        | R::NoCertificatesPresented
        | R::UnsupportedNameType
        | R::AlertReceived(_)
        | R::PeerIncompatible(_)
        | R::PeerMisbehaved(_)
        | R::InvalidCertRevocationList(_)) => Some(err.to_string()),
        _ => None,
    }
}

fn innermost(e: &reqwest::Error) -> String {
    let mut last = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_input_without_certificates() {
        assert_eq!(
            CaBundle::from_pem(b"hello").unwrap_err(),
            CaBundleError::Empty
        );
        assert!(
            CaBundle::from_pem(
                b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
            )
            .is_err()
        );
    }
}
