//! Leader election on the real control plane: only one replica leads, and
//! another takes over when the leader stops renewing.

mod support;

use confluence_operator::leader::LeaderElector;
use std::time::Duration;

#[tokio::test]
async fn only_one_replica_leads_and_a_standby_takes_over() {
    let client = support::client().await;
    let ns = support::test_namespace(&client, "leader").await;
    let timing =
        |e: LeaderElector| e.with_timing(Duration::from_secs(3), Duration::from_millis(300));
    let a = timing(LeaderElector::new(
        client.clone(),
        &ns,
        "operator",
        "replica-a",
    ));
    let b = timing(LeaderElector::new(
        client.clone(),
        &ns,
        "operator",
        "replica-b",
    ));

    a.acquire().await.unwrap();
    let a_holds = tokio::spawn(async move { a.hold().await });

    // b must not get the lease while a renews it.
    let waited = tokio::time::timeout(Duration::from_secs(5), b.acquire()).await;
    assert!(
        waited.is_err(),
        "standby acquired the lease while the leader renewed it"
    );

    // The leader goes away; the standby takes over after the lease expires.
    a_holds.abort();
    tokio::time::timeout(Duration::from_secs(15), b.acquire())
        .await
        .expect("standby should take over after the lease expired")
        .unwrap();
    support::delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn a_leader_that_releases_on_shutdown_hands_over_at_once() {
    let client = support::client().await;
    let ns = support::test_namespace(&client, "release").await;
    // A long lease: only an explicit release lets the standby in quickly.
    let timing =
        |e: LeaderElector| e.with_timing(Duration::from_secs(60), Duration::from_millis(200));
    let a = timing(LeaderElector::new(client.clone(), &ns, "op", "replica-a"));
    let b = timing(LeaderElector::new(client.clone(), &ns, "op", "replica-b"));
    a.acquire().await.unwrap();
    // Releasing a lease held by someone else does nothing.
    b.release().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(1), b.acquire())
            .await
            .is_err()
    );
    a.release().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), b.acquire())
        .await
        .expect("standby takes over right after the release")
        .unwrap();
    support::delete_namespace(&client, &ns).await;
}
