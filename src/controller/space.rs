//! ConfluenceSpace reconciler: owner reference to the site, sync on
//! create / spec change / interval / resync annotation, and content cleanup
//! through a finalizer.

use super::credentials::SiteError;
use super::events::EventAction;
use super::failure::Failure;
use super::schedule::{self, Decision, Trigger};
use super::site::site_key;
use super::{Context, Error, credentials, object_key};
use crate::api::conditions::{self, Reason};
use crate::api::space::{ConfluenceSpaceStatus, ContentKind, LeftOutCounts, SyncPhase, SyncResult};
use crate::api::{
    CONNECTED_BY_ANNOTATION, ConfluenceSite, ConfluenceSpace, Outcome, RESYNC_ANNOTATION,
    SPACE_FINALIZER, duration,
};
use crate::confluence::{ConfluenceApi, ListOptions, SiteConfig, SpaceInfo, SpaceRef};
use crate::model::{ContentType, SpaceScope};
use crate::sync::{self, SyncReport, SyncRequest};
use crate::telemetry::{SpaceLabels, SyncLabels};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn reconcile(space: Arc<ConfluenceSpace>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<ConfluenceSpace> =
        Api::namespaced(ctx.client.clone(), &space.namespace().unwrap_or_default());
    let (space, prefetched) = with_finalizer(&ctx, &api, space).await?;
    finalizer(&api, SPACE_FINALIZER, space, |event| async {
        match event {
            FinalizerEvent::Apply(space) => apply(space, ctx.clone(), prefetched).await,
            FinalizerEvent::Cleanup(space) => cleanup(space, ctx.clone()).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    })
}

/// The site (`None`: not found) and its connection settings, read beside
/// the finalizer write of a new space: its first sync needs both, and
/// neither depends on the write.
struct Prefetched {
    site: Option<(ConfluenceSite, Result<SiteConfig, SiteError>)>,
}

async fn prefetch(ctx: &Context, space: &ConfluenceSpace) -> Result<Prefetched, Error> {
    let sites: Api<ConfluenceSite> =
        Api::namespaced(ctx.client.clone(), &space.namespace().unwrap_or_default());
    let site = match sites.get_opt(&space.spec.site_ref.name).await? {
        Some(site) => {
            let config = credentials::site_config(&ctx.client, &site).await;
            Some((site, config))
        }
        None => None,
    };
    Ok(Prefetched { site })
}

/// The site's connection settings: those read ahead, if any (once), else
/// read now.
async fn site_config(
    ctx: &Context,
    site: &ConfluenceSite,
    read_ahead: &mut Option<Result<SiteConfig, SiteError>>,
) -> Result<SiteConfig, SiteError> {
    match read_ahead.take() {
        Some(config) => config,
        None => credentials::site_config(&ctx.client, site).await,
    }
}

/// Adds our finalizer to a live space that lacks it and goes on with the
/// object as written. (`finalizer` would add it and end the reconcile,
/// leaving the sync to the next one, one watch round trip later.) The patch
/// tests the list it extends, so a concurrent change fails it rather than
/// being overwritten.
async fn with_finalizer(
    ctx: &Context,
    api: &Api<ConfluenceSpace>,
    space: Arc<ConfluenceSpace>,
) -> Result<(Arc<ConfluenceSpace>, Option<Prefetched>), Error> {
    if space.metadata.deletion_timestamp.is_some()
        || space.finalizers().iter().any(|f| f == SPACE_FINALIZER)
    {
        return Ok((space, None));
    }
    let (written, prefetched) =
        tokio::join!(add_finalizer(ctx, api, &space), prefetch(ctx, &space));
    // A failed read is only a missed shortcut: `apply` reads again.
    Ok((written?, prefetched.ok()))
}

async fn add_finalizer(
    ctx: &Context,
    api: &Api<ConfluenceSpace>,
    space: &ConfluenceSpace,
) -> Result<Arc<ConfluenceSpace>, Error> {
    let finalizers = space.finalizers();
    let patch: json_patch::Patch = serde_json::from_value(if finalizers.is_empty() {
        json!([
            { "op": "test", "path": "/metadata/finalizers", "value": null },
            { "op": "add", "path": "/metadata/finalizers", "value": [SPACE_FINALIZER] },
        ])
    } else {
        json!([
            { "op": "test", "path": "/metadata/finalizers", "value": finalizers },
            { "op": "add", "path": "/metadata/finalizers/-", "value": SPACE_FINALIZER },
        ])
    })
    .map_err(|e| Error::Finalizer(format!("building the finalizer patch: {e}")))?;
    let written = api
        .patch(
            &space.name_any(),
            &PatchParams::default(),
            &Patch::<()>::Json(patch),
        )
        .await?;
    ctx.written.record(&object_key("space", &written), &written);
    Ok(Arc::new(written))
}

pub fn scope_of(space: &ConfluenceSpace) -> SpaceScope {
    SpaceScope::new(space.namespace().unwrap_or_default(), space.name_any())
}

/// Removes the space's content from every store; the object goes only after
/// this succeeded.
async fn cleanup(space: Arc<ConfluenceSpace>, ctx: Arc<Context>) -> Result<Action, Error> {
    let scope = scope_of(&space);
    sync::purge_space(&ctx.stores, &scope).await?;
    ctx.written.forget(&object_key("space", space.as_ref()));
    ctx.metrics.items.remove(&SpaceLabels {
        namespace: scope.namespace.clone(),
        space: scope.name.clone(),
    });
    ctx.clear_failures(&object_key("space", space.as_ref()));
    tracing::info!(space = %scope, "removed space content from all stores");
    ctx.event(
        space.as_ref(),
        EventType::Normal,
        Reason::ContentRemoved,
        EventAction::Disconnect,
        format!(
            "Removed the content of space {} from all stores",
            space.spec.space_key
        ),
    )
    .await;
    Ok(Action::await_change())
}

async fn apply(
    space: Arc<ConfluenceSpace>,
    ctx: Arc<Context>,
    prefetched: Option<Prefetched>,
) -> Result<Action, Error> {
    let namespace = space.namespace().unwrap_or_default();
    let api: Api<ConfluenceSpace> = Api::namespaced(ctx.client.clone(), &namespace);
    let status = base_status(&space);

    // The API server refuses these keys; this guards objects created before
    // the rule existed or with validation bypassed.
    if space.spec.space_key.starts_with('~') {
        return stall(
            &ctx,
            &space,
            status,
            Reason::PersonalSpaceRefused,
            format!(
                "space {:?} is a personal space; personal spaces are never synced",
                space.spec.space_key
            ),
        )
        .await;
    }

    let sites: Api<ConfluenceSite> = Api::namespaced(ctx.client.clone(), &namespace);
    let (site, config) = match prefetched {
        Some(Prefetched {
            site: Some((site, config)),
        }) => (Some(site), Some(config)),
        Some(Prefetched { site: None }) => (None, None),
        None => (sites.get_opt(&space.spec.site_ref.name).await?, None),
    };
    let Some(site) = site else {
        return wait_for_site(&ctx, &api, &space, status).await;
    };
    // The owner reference only matters when the site is deleted: a sync
    // writes it beside its work (see `announce`), every other path first.
    if space.spec.suspend == Some(true) || site.spec.suspend == Some(true) {
        return hold_suspended(&ctx, &api, &space, &site, status).await;
    }
    sync_when_due(&ctx, &api, &space, &site, config, status).await
}

/// The space's site does not exist (yet): `Pending`, retried.
async fn wait_for_site(
    ctx: &Context,
    api: &Api<ConfluenceSpace>,
    space: &ConfluenceSpace,
    mut status: ConfluenceSpaceStatus,
) -> Result<Action, Error> {
    let generation = space.metadata.generation;
    let msg = format!(
        "ConfluenceSite {:?} not found in namespace {:?}",
        space.spec.site_ref.name,
        space.namespace().unwrap_or_default()
    );
    status.phase = Some(SyncPhase::Pending);
    status.observed_generation = generation;
    conditions::mark_retrying(
        &mut status.conditions,
        Reason::SiteNotFound,
        &msg,
        generation,
    );
    patch_status(ctx, api, space, &status).await?;
    // The site watch wakes us when it appears; this is a safety net.
    Ok(Action::requeue(ctx.settings.max_backoff))
}

/// The space or its site is suspended: content stays, nothing syncs until
/// a spec changes.
async fn hold_suspended(
    ctx: &Context,
    api: &Api<ConfluenceSpace>,
    space: &ConfluenceSpace,
    site: &ConfluenceSite,
    mut status: ConfluenceSpaceStatus,
) -> Result<Action, Error> {
    let generation = space.metadata.generation;
    ensure_owner(ctx, api, space, site).await?;
    status.phase = Some(SyncPhase::Suspended);
    status.observed_generation = generation;
    let msg = if space.spec.suspend == Some(true) {
        "Space is suspended: content stays, no syncing until spec.suspend is false"
    } else {
        "Site is suspended: content stays, no syncing until the site's spec.suspend is false"
    };
    conditions::set(
        &mut status.conditions,
        conditions::RECONCILING,
        false,
        Reason::Suspended,
        msg,
        generation,
    );
    patch_status(ctx, api, space, &status).await?;
    Ok(Action::await_change())
}

/// Syncs now if the schedule, a request or the stores call for it, else
/// requeues for when the next sync is due. `config` is the site's settings
/// if already read.
async fn sync_when_due(
    ctx: &Context,
    api: &Api<ConfluenceSpace>,
    space: &ConfluenceSpace,
    site: &ConfluenceSite,
    mut config: Option<Result<SiteConfig, SiteError>>,
    status: ConfluenceSpaceStatus,
) -> Result<Action, Error> {
    let key = object_key("space", space);
    let interval = sync_interval(space, site, ctx);
    let site_annotation = site.annotations().get(RESYNC_ANNOTATION).cloned();
    let decision = |s: &ConfluenceSpace| {
        let st = s.status.clone().unwrap_or_default();
        schedule::decide(&schedule::Inputs {
            generation: s.metadata.generation,
            status: &st,
            resync_annotation: s.annotations().get(RESYNC_ANNOTATION).map(String::as_str),
            site_resync_annotation: site_annotation.as_deref(),
            interval,
            retry_at: ctx.retry_at(&key),
            now: jiff::Timestamp::now(),
        })
    };
    let rebuilt = tell_rebuilt(ctx, space, &key).await;
    let trigger = match decision(space) {
        Decision::Wait(_) if rebuilt => Trigger::StoreOutOfDate,
        Decision::Wait(d) if stores_in_step(ctx, space, &status).await => {
            ensure_owner(ctx, api, space, site).await?;
            patch_status(ctx, api, space, &status).await?;
            return Ok(Action::requeue(d));
        }
        Decision::Wait(_) => Trigger::StoreOutOfDate,
        Decision::SyncNow(_) => {
            // The cache may lag behind our last status write; confirm
            // against it so one annotation change gives exactly one sync.
            // The site's credentials are read meanwhile.
            let (fresh, config) = tokio::join!(
                ctx.written.fresh(api, &key, space),
                site_config(ctx, site, &mut config)
            );
            let Some(fresh) = fresh? else {
                return Ok(Action::await_change());
            };
            match decision(&fresh) {
                Decision::Wait(d) => {
                    ensure_owner(ctx, api, &fresh, site).await?;
                    return Ok(Action::requeue(d));
                }
                // Sync what the API server holds: with the stale copy the
                // status would name an older request as handled, and its
                // `Syncing` write could be skipped as "unchanged".
                Decision::SyncNow(t) => {
                    let status = base_status(&fresh);
                    let sync = Sync {
                        space: &fresh,
                        site,
                        config,
                        trigger: t,
                        interval,
                    };
                    return run_sync(ctx, api, sync, status).await;
                }
            }
        }
    };
    let sync = Sync {
        space,
        site,
        config: site_config(ctx, site, &mut config).await,
        trigger,
        interval,
    };
    run_sync(ctx, api, sync, status).await
}

/// A store that started empty after damage: says so where users look, once
/// per space, so the space is refilled now rather than at the next
/// interval. Returns whether it did.
async fn tell_rebuilt(ctx: &Context, space: &ConfluenceSpace, key: &str) -> bool {
    let Some(notice) = ctx.rebuilt_notice_once(key).map(str::to_string) else {
        return false;
    };
    ctx.event(
        space,
        EventType::Warning,
        Reason::IndexRebuilt,
        EventAction::Sync,
        format!("{notice}; resyncing space {}", space.spec.space_key),
    )
    .await;
    true
}

/// A sync about to run: the space and site as last read, the site's
/// connection settings (or why they could not be read), and why it runs.
struct Sync<'a> {
    space: &'a ConfluenceSpace,
    site: &'a ConfluenceSite,
    config: Result<SiteConfig, SiteError>,
    trigger: Trigger,
    interval: Duration,
}

/// The status as this reconcile starts from: the object's, with the fields
/// that only mirror the object brought up to date.
fn base_status(space: &ConfluenceSpace) -> ConfluenceSpaceStatus {
    let mut status = space.status.clone().unwrap_or_default();
    status.created_at = space.metadata.creation_timestamp.clone();
    if let Some(by) = space.annotations().get(CONNECTED_BY_ANNOTATION) {
        status.connected_by = Some(by.clone());
    }
    status.viewers = Some(space.spec.viewers.summary());
    status
}

/// Whether every store still holds what the last successful sync left.
/// Store errors count as "in step": the next sync will surface them.
async fn stores_in_step(
    ctx: &Context,
    space: &ConfluenceSpace,
    status: &ConfluenceSpaceStatus,
) -> bool {
    if status.phase != Some(SyncPhase::Synced) {
        return true;
    }
    let Some(items) = status.items else {
        return true;
    };
    let scope = scope_of(space);
    for store in &ctx.stores {
        match store.count(&scope).await {
            Ok(n) if n != items => {
                tracing::info!(space = %scope, store = store.name(), stored = n, expected = items, "store out of date; resyncing");
                return false;
            }
            _ => {}
        }
    }
    true
}

fn sync_interval(space: &ConfluenceSpace, site: &ConfluenceSite, ctx: &Context) -> Duration {
    let raw = space
        .spec
        .sync_interval
        .as_deref()
        .or(site.spec.sync_interval.as_deref());
    let base = raw
        .and_then(|r| duration::parse(r).ok())
        .unwrap_or(ctx.settings.default_sync_interval)
        .max(Duration::from_secs(1));
    let uid = space.metadata.uid.as_deref().unwrap_or_default();
    schedule::jittered(base, uid, ctx.settings.jitter)
}

fn list_options(space: &ConfluenceSpace) -> ListOptions {
    let filters = space.spec.filters.clone().unwrap_or_default();
    let mut content_types: Vec<ContentType> = filters
        .content_types
        .iter()
        .map(|k| match k {
            ContentKind::Page => ContentType::Page,
            ContentKind::Blogpost => ContentType::Blogpost,
        })
        .collect();
    if content_types.is_empty() {
        content_types.push(ContentType::Page);
    }
    ListOptions {
        content_types,
        include_labels: filters.include_labels,
        exclude_labels: filters.exclude_labels,
        include_restricted: filters.include_restricted.unwrap_or(false),
    }
}

/// Runs one sync and writes its result: status, conditions, metrics and
/// Events. Requeues after the interval, or after the backoff on failure.
async fn run_sync(
    ctx: &Context,
    api: &Api<ConfluenceSpace>,
    sync: Sync<'_>,
    mut status: ConfluenceSpaceStatus,
) -> Result<Action, Error> {
    let (space, interval) = (sync.space, sync.interval);
    // Whatever happens next, this generation and these requests are handled.
    status.observed_generation = space.metadata.generation;
    status.last_handled_resync_at = space.annotations().get(RESYNC_ANNOTATION).cloned();
    status.last_handled_site_resync_at = sync.site.annotations().get(RESYNC_ANNOTATION).cloned();

    let started = Instant::now();
    let outcome = attempt(ctx, api, sync, &mut status).await;
    let ended = Ended {
        elapsed: started.elapsed(),
        at: Time(jiff::Timestamp::now()),
    };
    ctx.metrics
        .sync_duration
        .observe(ended.elapsed.as_secs_f64());
    match outcome {
        Ok(report) => {
            finish_synced(ctx, api, space, status, &report, ended).await?;
            Ok(Action::requeue(interval))
        }
        Err(failure) => {
            let retry_in = finish_failed(ctx, api, space, status, &failure, ended).await?;
            Ok(Action::requeue(retry_in))
        }
    }
}

/// When a sync attempt ended and how long it ran.
struct Ended {
    elapsed: Duration,
    at: Time,
}

/// Connects to the site, then syncs the space while telling users the sync
/// started. Once connected, `status` is `Syncing` and names the space if the
/// lookup found it.
async fn attempt(
    ctx: &Context,
    api: &Api<ConfluenceSpace>,
    sync: Sync<'_>,
    status: &mut ConfluenceSpaceStatus,
) -> Result<SyncReport, Failure> {
    let Sync {
        space,
        site,
        config,
        trigger,
        ..
    } = sync;
    let scope = scope_of(space);
    let space_key = &space.spec.space_key;
    let (source, config) = connect(ctx, &scope, site, config)?;
    // The lookup (link, name, kind) runs beside the listing, which asks by
    // key where it can; the engine refuses a personal space before storing
    // anything.
    let space_ref = SpaceRef::lookup(source.as_ref(), space_key);

    status.phase = Some(SyncPhase::Syncing);
    let msg = syncing_message(trigger, status, space_key);
    let generation = space.metadata.generation;
    conditions::mark_reconciling(
        &mut status.conditions,
        Reason::Progressing,
        &msg,
        generation,
    );
    tracing::info!(space = %scope, key = %space_key, trigger = trigger.describe(), "sync started");

    let request = SyncRequest {
        scope,
        site_url: config.base_url.to_string(),
        space: space_ref.clone(),
        audience: space.spec.viewers.audience(),
        options: list_options(space),
        batch_size: ctx.settings.batch_size,
    };
    let (announced, synced) = tokio::join!(
        announce(ctx, api, space, site, &space_ref, status, msg),
        sync::sync_space(source.as_ref(), &ctx.stores, &request)
    );
    if let Ok(info) = space_ref.info().await {
        describe_space(status, &info);
    }
    let report = synced?;
    announced.map_err(Failure::Announce)?;
    Ok(report)
}

/// The site's client (cached per site) and its settings, with the
/// operator's request deadline.
fn connect(
    ctx: &Context,
    scope: &SpaceScope,
    site: &ConfluenceSite,
    config: Result<SiteConfig, SiteError>,
) -> Result<(Arc<dyn ConfluenceApi>, SiteConfig), Failure> {
    let mut config = config?;
    config.request_timeout = ctx.settings.request_timeout;
    let source = ctx
        .sources
        .get(&site_key(&scope.namespace, &site.name_any()), &config)?;
    Ok((source, config))
}

/// `Syncing space ENG (spec changed)`; a resync also names the request it
/// answers, so `kubectl get events` tells syncs apart.
fn syncing_message(trigger: Trigger, status: &ConfluenceSpaceStatus, space_key: &str) -> String {
    let requested = match trigger {
        Trigger::ResyncRequested => status.last_handled_resync_at.as_deref(),
        Trigger::SiteResyncRequested => status.last_handled_site_resync_at.as_deref(),
        _ => None,
    };
    match requested {
        Some(at) => format!("Syncing space {space_key} ({} at {at})", trigger.describe()),
        None => format!("Syncing space {space_key} ({})", trigger.describe()),
    }
}

/// Tells users the sync started: owner reference, `Syncing` status and a
/// `SyncStarted` Event. These cost API server round trips the sync need not
/// wait for, so they run beside it. It waits for the space lookup, so it
/// names the space's link and never announces a space the sync will refuse.
async fn announce(
    ctx: &Context,
    api: &Api<ConfluenceSpace>,
    space: &ConfluenceSpace,
    site: &ConfluenceSite,
    space_ref: &SpaceRef<'_>,
    status: &ConfluenceSpaceStatus,
    msg: String,
) -> Result<(), Error> {
    ensure_owner(ctx, api, space, site).await?;
    let Ok(info) = space_ref.info().await else {
        return Ok(());
    };
    if info.is_personal() {
        return Ok(());
    }
    let mut syncing = status.clone();
    describe_space(&mut syncing, &info);
    patch_status(ctx, api, space, &syncing).await?;
    ctx.event(
        space,
        EventType::Normal,
        Reason::SyncStarted,
        EventAction::Sync,
        msg,
    )
    .await;
    Ok(())
}

/// Records a finished sync: metrics, `Synced` status and conditions, and
/// Events (a Warning too when items could not be vetted).
async fn finish_synced(
    ctx: &Context,
    api: &Api<ConfluenceSpace>,
    space: &ConfluenceSpace,
    mut status: ConfluenceSpaceStatus,
    report: &SyncReport,
    ended: Ended,
) -> Result<(), Error> {
    let scope = scope_of(space);
    ctx.clear_failures(&object_key("space", space));
    count_synced(ctx, &scope, report);
    let msg = synced_message(&space.spec.space_key, report, ended.elapsed);
    status.items = Some(report.items);
    status.phase = Some(SyncPhase::Synced);
    status.last_synced_at = Some(ended.at.clone());
    status.last_sync_result = Some(succeeded_result(report, ended, &msg));
    let generation = space.metadata.generation;
    conditions::mark_ready(&mut status.conditions, Reason::Synced, &msg, generation);
    patch_status(ctx, api, space, &status).await?;
    tracing::info!(space = %scope, items = report.items, fetched = report.fetched, deleted = report.deleted, "sync finished");
    ctx.event(
        space,
        EventType::Normal,
        Reason::Synced,
        EventAction::Sync,
        msg,
    )
    .await;
    // Content that could not be vetted is a gap in the space the user
    // must be able to see, not a quiet omission.
    if report.left_out.unverifiable > 0 || report.kept_unconfirmed > 0 {
        let detail = format!(
            "{} items could not be vetted and were left out; {} items missing from the listing were kept because Confluence still has them",
            report.left_out.unverifiable, report.kept_unconfirmed
        );
        ctx.event(
            space,
            EventType::Warning,
            Reason::ItemsNotVetted,
            EventAction::Sync,
            detail,
        )
        .await;
    }
    Ok(())
}

/// Records a failed sync: backoff, metrics, `Failed` status, conditions
/// (retrying or stalled) and a `SyncFailed` Event. Returns when to retry.
async fn finish_failed(
    ctx: &Context,
    api: &Api<ConfluenceSpace>,
    space: &ConfluenceSpace,
    mut status: ConfluenceSpaceStatus,
    failure: &Failure,
    ended: Ended,
) -> Result<Duration, Error> {
    let scope = scope_of(space);
    let (delay, _) = ctx.record_failure(&object_key("space", space));
    count_sync(ctx, &scope, Outcome::Failed);
    let (why, message) = (failure.reason(), failure.to_string());
    status.phase = Some(SyncPhase::Failed);
    status.last_sync_result = Some(SyncResult {
        result: Outcome::Failed,
        finished_at: Some(ended.at),
        duration_seconds: round_secs(ended.elapsed),
        message: message.clone(),
        ..SyncResult::default()
    });
    failure.mark(&mut status.conditions, space.metadata.generation);
    patch_status(ctx, api, space, &status).await?;
    tracing::warn!(space = %scope, reason = why.as_str(), error = %message, retry_in = ?delay, "sync failed");
    ctx.event(
        space,
        EventType::Warning,
        Reason::SyncFailed,
        EventAction::Sync,
        format!("{why}: {message}"),
    )
    .await;
    Ok(delay)
}

/// Counts a sync attempt by how it ended (`success` or `failure`).
fn count_sync(ctx: &Context, scope: &SpaceScope, outcome: Outcome) {
    let result = match outcome {
        Outcome::Succeeded => "success",
        Outcome::Failed => "failure",
    };
    let labels = SyncLabels {
        namespace: scope.namespace.clone(),
        space: scope.name.clone(),
        result: result.to_string(),
    };
    ctx.metrics.syncs.get_or_create(&labels).inc();
}

/// The metrics of a finished sync: its count, pages moved, and the items
/// the space now holds.
fn count_synced(ctx: &Context, scope: &SpaceScope, report: &SyncReport) {
    count_sync(ctx, scope, Outcome::Succeeded);
    ctx.metrics.pages_fetched.inc_by(report.fetched);
    ctx.metrics.pages_deleted.inc_by(report.deleted);
    ctx.metrics
        .items
        .get_or_create(&SpaceLabels {
            namespace: scope.namespace.clone(),
            space: scope.name.clone(),
        })
        .set(i64::try_from(report.items).unwrap_or(i64::MAX));
}

/// What a finished sync did, for the status, the `Ready` condition and the
/// `Synced` Event.
fn synced_message(space_key: &str, report: &SyncReport, elapsed: Duration) -> String {
    let mut msg = format!(
        "Synced {} items from space {space_key} ({} fetched, {} deleted, {} unchanged) in {:.1}s",
        report.items,
        report.fetched,
        report.deleted,
        report.unchanged,
        elapsed.as_secs_f64()
    );
    if let Some(summary) = left_out_summary(report) {
        msg.push_str(&format!("; left out: {summary}"));
    }
    if let Some(note) = &report.deletion_note {
        msg.push_str(&format!("; {note}"));
    }
    msg
}

/// `status.lastSyncResult` of a finished sync.
fn succeeded_result(report: &SyncReport, ended: Ended, msg: &str) -> SyncResult {
    SyncResult {
        result: Outcome::Succeeded,
        finished_at: Some(ended.at),
        duration_seconds: round_secs(ended.elapsed),
        fetched: report.fetched,
        deleted: report.deleted,
        unchanged: report.unchanged,
        left_out: (report.left_out.total() > 0).then_some(LeftOutCounts {
            restricted: report.left_out.restricted,
            restricted_ancestor: report.left_out.restricted_ancestor,
            unverifiable: report.left_out.unverifiable,
            labels: report.left_out.labels,
        }),
        kept_unconfirmed: (report.kept_unconfirmed > 0).then_some(report.kept_unconfirmed),
        message: msg.to_string(),
    }
}

/// The link and name the status shows for the space.
fn describe_space(status: &mut ConfluenceSpaceStatus, info: &SpaceInfo) {
    status.url = Some(info.url.clone());
    status.space_name = Some(info.name.clone());
}

/// `"3 restricted, 2 under a restricted parent"`, or `None` when nothing
/// was left out.
fn left_out_summary(report: &SyncReport) -> Option<String> {
    let l = &report.left_out;
    let parts: Vec<String> = [
        (l.restricted, "restricted"),
        (l.restricted_ancestor, "under a restricted parent"),
        (l.unverifiable, "could not be vetted"),
        (l.labels, "excluded by labels"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, why)| format!("{n} {why}"))
    .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn round_secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

async fn stall(
    ctx: &Context,
    space: &ConfluenceSpace,
    mut status: ConfluenceSpaceStatus,
    why: Reason,
    message: String,
) -> Result<Action, Error> {
    let generation = space.metadata.generation;
    let api: Api<ConfluenceSpace> =
        Api::namespaced(ctx.client.clone(), &space.namespace().unwrap_or_default());
    let first = !conditions::is_true(&status.conditions, conditions::STALLED);
    status.phase = Some(SyncPhase::Failed);
    status.observed_generation = generation;
    conditions::mark_stalled(&mut status.conditions, why, &message, generation);
    patch_status(ctx, &api, space, &status).await?;
    if first {
        ctx.event(space, EventType::Warning, why, EventAction::Sync, message)
            .await;
    }
    Ok(Action::await_change())
}

/// Makes the site an owner of the space, so deleting the site
/// garbage-collects its spaces (whose finalizers then purge the stores).
async fn ensure_owner(
    ctx: &Context,
    api: &Api<ConfluenceSpace>,
    space: &ConfluenceSpace,
    site: &ConfluenceSite,
) -> Result<(), Error> {
    let Some(uid) = site.metadata.uid.clone() else {
        return Ok(());
    };
    let mut owners = space.metadata.owner_references.clone().unwrap_or_default();
    if owners.iter().any(|o| o.uid == uid) {
        return Ok(());
    }
    // A stale reference to an earlier site of the same name would block GC semantics.
    owners.retain(|o| !(o.kind == "ConfluenceSite" && o.name == site.name_any()));
    owners.push(OwnerReference {
        api_version: ConfluenceSite::api_version(&()).to_string(),
        kind: ConfluenceSite::kind(&()).to_string(),
        name: site.name_any(),
        uid,
        controller: Some(false),
        block_owner_deletion: Some(true),
    });
    let written = api
        .patch(
            &space.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "ownerReferences": owners } })),
        )
        .await?;
    ctx.written.record(&object_key("space", space), &written);
    Ok(())
}

async fn patch_status(
    ctx: &Context,
    api: &Api<ConfluenceSpace>,
    space: &ConfluenceSpace,
    status: &ConfluenceSpaceStatus,
) -> Result<(), Error> {
    let written =
        super::patch_status(api, &space.name_any(), space.status.as_ref(), status).await?;
    if let Some(written) = written {
        ctx.written.record(&object_key("space", space), &written);
    }
    Ok(())
}

pub fn error_policy(space: Arc<ConfluenceSpace>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.backoff_after_error("ConfluenceSpace", &object_key("space", space.as_ref()), err)
}
