//! Lease-based leader election (coordination.k8s.io/v1), so two replicas
//! never reconcile at once: only the holder of the Lease runs controllers.

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("leader election Lease {0}: {1}")]
    Kube(String, #[source] kube::Error),
    #[error("lost the leader election Lease {0} to {1}")]
    Lost(String, String),
}

pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
    retry_period: Duration,
}

impl LeaderElector {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Overrides how long a lease lasts without renewal and how often it is retried.
    pub fn with_timing(mut self, lease_duration: Duration, retry_period: Duration) -> Self {
        self.lease_duration = lease_duration;
        self.retry_period = retry_period;
        self
    }

    /// Waits until this process holds the Lease.
    pub async fn acquire(&self) -> Result<(), LeaderError> {
        let mut logged = false;
        loop {
            if self.try_acquire_or_renew().await? {
                tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
                return Ok(());
            }
            if !logged {
                tracing::info!(lease = %self.name, "waiting for leadership");
                logged = true;
            }
            tokio::time::sleep(self.retry_period).await;
        }
    }

    /// Renews the Lease until it cannot; returns why leadership ended.
    pub async fn hold(&self) -> LeaderError {
        let mut last_renewed = std::time::Instant::now();
        loop {
            tokio::time::sleep(self.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = std::time::Instant::now(),
                Ok(false) => {
                    return LeaderError::Lost(self.name.clone(), "another replica".into());
                }
                Err(e) => {
                    // Transient API errors are tolerated until the lease would
                    // have expired for everyone else.
                    if last_renewed.elapsed() >= self.lease_duration.mul_f64(0.8) {
                        return e;
                    }
                    tracing::warn!(error = %e, "lease renewal failed; retrying");
                }
            }
        }
    }

    /// Gives the Lease up when this process holds it, so a standby takes over
    /// at its next retry instead of after the lease duration (on shutdown).
    pub async fn release(&self) -> Result<(), LeaderError> {
        let kube_err = |e| LeaderError::Kube(self.name.clone(), e);
        // A renewal cancelled by the shutdown may still land first; then the
        // replace conflicts and is retried on the fresh Lease.
        for _ in 0..3 {
            let Some(mut lease) = self.api.get_opt(&self.name).await.map_err(kube_err)? else {
                return Ok(());
            };
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                return Ok(());
            }
            // An empty holder is free for anyone (see try_acquire_or_renew).
            spec.holder_identity = None;
            match self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(kube_err(e)),
            }
        }
        Ok(())
    }

    async fn try_acquire_or_renew(&self) -> Result<bool, LeaderError> {
        let kube_err = |e| LeaderError::Kube(self.name.clone(), e);
        let now = Timestamp::now();
        let duration_secs = i32::try_from(self.lease_duration.as_secs()).unwrap_or(15);
        let Some(mut lease) = self.api.get_opt(&self.name).await.map_err(kube_err)? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(kube_err(e)),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let held_by_me = holder == self.identity;
        let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
            (Some(renewed), Some(secs)) => renewed
                .0
                .checked_add(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
                .map(|end| end < now)
                .unwrap_or(true),
            _ => true,
        };
        if !(held_by_me || holder.is_empty() || expired) {
            return Ok(false);
        }
        if !held_by_me {
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.holder_identity = Some(self.identity.clone());
        }
        spec.lease_duration_seconds = Some(duration_secs);
        spec.renew_time = Some(MicroTime(now));
        // replace() carries the resourceVersion we read: a concurrent writer
        // makes this fail with 409 instead of both believing they lead.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(kube_err(e)),
        }
    }
}
