//! ConfluenceSite reconciler: checks the connection and reports what the
//! credentials can see. Syncing itself is per space.

use super::credentials;
use super::events::EventAction;
use super::failure::Failure;
use super::{Context, Error, object_key};
use crate::api::conditions::{self, Reason};
use crate::api::site::{ConfluenceSiteStatus, ConnectionCheck, SiteFlavor};
use crate::api::{ConfluenceSite, Outcome, RESYNC_ANNOTATION};
use crate::confluence::Flavor;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

/// Identifies a site in the client cache.
pub fn site_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

pub async fn reconcile(site: Arc<ConfluenceSite>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = site.namespace().unwrap_or_default();
    let name = site.name_any();
    let key = object_key("site", site.as_ref());
    let generation = site.metadata.generation;
    let old = site.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = generation;
    status.last_handled_resync_at = site.annotations().get(RESYNC_ANNOTATION).cloned();

    if site.metadata.deletion_timestamp.is_some() {
        ctx.sources.forget(&site_key(&namespace, &name));
        return Ok(Action::await_change());
    }

    if site.spec.suspend == Some(true) {
        conditions::mark_ready(
            &mut status.conditions,
            Reason::Suspended,
            "Site is suspended: no syncing until spec.suspend is false",
            generation,
        );
        patch_status(&ctx, &site, &status).await?;
        return Ok(Action::await_change());
    }

    if let Some(wait) = check_not_due(&ctx, &site, &old, &key) {
        return Ok(Action::requeue(wait));
    }

    let outcome = check(&ctx, &site, &mut status).await;
    let now = Time(jiff::Timestamp::now());
    let action = match outcome {
        Ok(identity) => {
            ctx.clear_failures(&key);
            let msg = format!(
                "Connected as {identity}; {} spaces visible",
                status.spaces.unwrap_or(0)
            );
            status.connected_as = Some(identity);
            status.last_connection_check = Some(ConnectionCheck {
                time: Some(now),
                result: Outcome::Succeeded,
                message: msg.clone(),
            });
            let was_ready = conditions::is_true(&old.conditions, conditions::READY);
            conditions::mark_ready(&mut status.conditions, Reason::Connected, &msg, generation);
            if !was_ready {
                ctx.event(
                    site.as_ref(),
                    EventType::Normal,
                    Reason::Connected,
                    EventAction::Connect,
                    msg,
                )
                .await;
            }
            Action::requeue(ctx.settings.site_check_interval)
        }
        Err(failure) => {
            let (delay, _) = ctx.record_failure(&key);
            let message = failure.to_string();
            status.last_connection_check = Some(ConnectionCheck {
                time: Some(now),
                result: Outcome::Failed,
                message: message.clone(),
            });
            failure.mark(&mut status.conditions, generation);
            let changed = conditions::get(&old.conditions, conditions::READY)
                .is_none_or(|c| c.message != message);
            if changed {
                ctx.event(
                    site.as_ref(),
                    EventType::Warning,
                    failure.reason(),
                    EventAction::Connect,
                    message,
                )
                .await;
            }
            // Missing Secrets are not watched (the operator may only `get`
            // Secrets), so recovery comes from this capped backoff.
            Action::requeue(delay)
        }
    };
    patch_status(&ctx, &site, &status).await?;
    Ok(action)
}

/// Our own status writes trigger reconciles too; those must not re-check the
/// connection. Returns how long to wait when no check is due.
fn check_not_due(
    ctx: &Context,
    site: &ConfluenceSite,
    old: &ConfluenceSiteStatus,
    key: &str,
) -> Option<Duration> {
    if old.observed_generation != site.metadata.generation
        || old.last_handled_resync_at.as_ref() != site.annotations().get(RESYNC_ANNOTATION)
    {
        return None;
    }
    let last = old.last_connection_check.as_ref()?;
    let now = jiff::Timestamp::now();
    let due = if last.result == Outcome::Succeeded {
        last.time
            .as_ref()?
            .0
            .checked_add(ctx.settings.site_check_interval)
            .ok()?
    } else {
        ctx.retry_at(key)?
    };
    let wait = due.as_millisecond() - now.as_millisecond();
    (wait > 0).then(|| Duration::from_millis(wait as u64))
}

/// Returns the identity the credentials belong to.
async fn check(
    ctx: &Context,
    site: &ConfluenceSite,
    status: &mut ConfluenceSiteStatus,
) -> Result<String, Failure> {
    let mut config = credentials::site_config(&ctx.client, site).await?;
    config.request_timeout = ctx.settings.request_timeout;
    status.flavor = Some(match config.flavor {
        Flavor::Cloud => SiteFlavor::Cloud,
        Flavor::DataCenter => SiteFlavor::DataCenter,
    });
    let key = site_key(&site.namespace().unwrap_or_default(), &site.name_any());
    let source = ctx.sources.get(&key, &config)?;
    let identity = source.whoami().await?;
    let spaces = source.spaces(None).await?;
    status.spaces = Some(u32::try_from(spaces.len()).unwrap_or(u32::MAX));
    Ok(identity)
}

async fn patch_status(
    ctx: &Context,
    site: &ConfluenceSite,
    status: &ConfluenceSiteStatus,
) -> Result<(), Error> {
    let api: Api<ConfluenceSite> =
        Api::namespaced(ctx.client.clone(), &site.namespace().unwrap_or_default());
    super::patch_status(&api, &site.name_any(), site.status.as_ref(), status).await?;
    Ok(())
}

pub fn error_policy(site: Arc<ConfluenceSite>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.backoff_after_error("ConfluenceSite", &object_key("site", site.as_ref()), err)
}
