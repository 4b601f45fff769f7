//! Publishes `events.k8s.io/v1` Events for the reconcilers.
//!
//! kube's `Recorder` folds every event with the same reason and action into
//! one series and keeps the first note, so after a few resyncs `kubectl get
//! events` showed "initial sync, 40 fetched" for every later sync. Here the
//! note is part of an event's identity: the same message repeated becomes a
//! series (count and last time stay accurate), and a new message is a new
//! Event that says what actually happened.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Client, ResourceExt};
use std::collections::HashMap;
use tokio::sync::Mutex;

/// How long a published event can still grow a series (as kube's recorder).
const SERIES_TTL: SignedDuration = SignedDuration::from_mins(6);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    regarding_uid: Option<String>,
    regarding_name: Option<String>,
    type_: &'static str,
    reason: String,
    action: String,
    note: String,
}

/// One event to publish about an object.
#[derive(Debug, Clone)]
pub struct Note<'a> {
    pub type_: EventType,
    pub reason: &'a str,
    pub action: &'a str,
    pub note: &'a str,
}

pub struct EventRecorder {
    client: Client,
    controller: String,
    instance: String,
    published: Mutex<HashMap<Key, Event>>,
}

impl EventRecorder {
    pub fn new(client: Client, controller: String, instance: String) -> Self {
        Self {
            client,
            controller,
            instance,
            published: Mutex::new(HashMap::new()),
        }
    }

    pub async fn publish(
        &self,
        ev: &Note<'_>,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = Key {
            regarding_uid: regarding.uid.clone(),
            regarding_name: regarding.name.clone(),
            type_: type_name(&ev.type_),
            reason: ev.reason.to_owned(),
            action: ev.action.to_owned(),
            note: ev.note.to_owned(),
        };
        let mut published = self.published.lock().await;
        published.retain(|_, e| last_seen(e).is_some_and(|t| t + SERIES_TTL > now));
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let event = match published.get(&key) {
            Some(previous) => {
                let mut event = previous.clone();
                event.series = Some(EventSeries {
                    count: previous.series.as_ref().map_or(2, |s| s.count + 1),
                    last_observed_time: MicroTime(now),
                });
                api.patch(
                    &event.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&event),
                )
                .await?;
                event
            }
            None => {
                let event = self.new_event(ev, regarding, now);
                api.create(&PostParams::default(), &event).await?
            }
        };
        // Kept for six minutes per object and message: without the server's
        // bookkeeping, which a series patch does not send back anyway.
        let mut event = event;
        event.metadata.managed_fields = None;
        published.insert(key, event);
        Ok(())
    }

    fn new_event(&self, ev: &Note<'_>, regarding: &ObjectReference, now: Timestamp) -> Event {
        let object = regarding.name.as_deref().unwrap_or(&self.controller);
        Event {
            action: Some(ev.action.to_owned()),
            reason: Some(ev.reason.to_owned()),
            note: Some(ev.note.to_owned()),
            type_: Some(type_name(&ev.type_).to_owned()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                // Unique per publish: a new note never overwrites an older event.
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                ..ObjectMeta::default()
            },
            ..Event::default()
        }
    }
}

fn type_name(t: &EventType) -> &'static str {
    match t {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

fn last_seen(e: &Event) -> Option<Timestamp> {
    e.series
        .as_ref()
        .map(|s| s.last_observed_time.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
}
