//! Status of `ViewerBinding`s: which segments they grant to how many
//! subjects, for `kubectl get viewerbindings`. The search API does not wait
//! for this: it reads bindings straight from its own watch
//! ([`crate::auth::BindingIndex`]).

use super::{Error, patch_status};
use crate::api::conditions::{self, Reason};
use crate::api::{ViewerBinding, ViewerBindingStatus};
use crate::reflect::WatchBackoff;
use futures::StreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

struct Ctx {
    api: Api<ViewerBinding>,
}

/// Runs the status reconciler until shutdown.
pub async fn run(client: Client) {
    let api: Api<ViewerBinding> = Api::all(client);
    Controller::new(api.clone(), watcher::Config::default())
        .trigger_backoff(WatchBackoff::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, Arc::new(Ctx { api }))
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "viewer binding reconcile loop");
            }
        })
        .await;
}

/// The status a binding should carry.
pub fn desired_status(binding: &ViewerBinding) -> ViewerBindingStatus {
    let current = binding.status.clone().unwrap_or_default();
    let generation = binding.metadata.generation;
    let subjects = u32::try_from(binding.spec.subjects.len()).unwrap_or(u32::MAX);
    let segments = binding.spec.segments.join(",");
    let mut conditions = current.conditions.clone();
    let message = format!("grants {segments} to {subjects} subject(s)");
    conditions::set(
        &mut conditions,
        conditions::READY,
        true,
        Reason::Bound,
        message,
        generation,
    );
    ViewerBindingStatus {
        conditions,
        observed_generation: generation,
        subjects: Some(subjects),
        segments: Some(segments),
    }
}

async fn reconcile(binding: Arc<ViewerBinding>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let status = desired_status(&binding);
    patch_status(
        &ctx.api,
        &binding.name_any(),
        binding.status.as_ref(),
        &status,
    )
    .await?;
    Ok(Action::await_change())
}

fn error_policy(binding: Arc<ViewerBinding>, err: &Error, _: Arc<Ctx>) -> Action {
    tracing::warn!(binding = binding.name_any(), error = %err, "viewer binding status failed");
    Action::requeue(Duration::from_secs(10))
}
