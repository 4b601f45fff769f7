//! A private CA made for one test, and server identities it signs, as a
//! site behind a company PKI would have.
#![allow(dead_code)]

use confluence_sim::{SimConfig, Simulator, TlsIdentity};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    /// The CA certificate, PEM: what a user puts in the bundle.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A simulator serving HTTPS with an identity this CA signed, with
    /// `spaces` spaces of `pages` pages and known credentials.
    pub async fn https_simulator(&self, spaces: usize, pages: usize) -> Simulator {
        Simulator::start(SimConfig {
            spaces,
            pages,
            blogposts: 0,
            tls: Some(self.server_identity()),
            user: "operator@example.com".into(),
            token: "test-token-123".into(),
            ..SimConfig::default()
        })
        .await
        .expect("simulator")
    }

    /// A server identity for the loopback simulator (`127.0.0.1`, `localhost`).
    pub fn server_identity(&self) -> TlsIdentity {
        let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("leaf params");
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        TlsIdentity {
            cert_chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}
