//! Sites without a CA bundle trust the system's roots, which the operator
//! reads once per process (`SSL_CERT_FILE` names them here). A file of its
//! own: the roots are read at the first client, so the variable must be set
//! before any.

mod pki;
mod sim_site;

use confluence_operator::confluence::{Flavor, connect};

#[tokio::test]
async fn a_site_without_a_ca_bundle_trusts_the_system_roots() {
    let ca = pki::TestCa::new("Acme Root CA in the system store");
    let dir = tempfile::tempdir().expect("tempdir");
    let roots = dir.path().join("ca-certificates.crt");
    std::fs::write(&roots, ca.pem()).expect("write the system roots");
    // SAFETY: set before this process starts any thread that reads the
    // environment (the simulator and the clients come after).
    unsafe { std::env::set_var("SSL_CERT_FILE", &roots) };

    let sim = ca.https_simulator(1, 3).await;
    // Two clients per flavor: the second uses the roots the first read.
    for flavor in [Flavor::Cloud, Flavor::DataCenter, Flavor::Cloud] {
        let config = sim_site::site_config(&sim, flavor);
        assert!(config.ca_bundle.is_none());
        let client = connect(config).expect("client");
        assert_eq!(
            client.whoami().await.expect("whoami over HTTPS"),
            "operator@example.com",
            "{flavor:?}"
        );
    }
}
