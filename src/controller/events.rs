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

/// What the controller was doing when something happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventAction {
    Sync,
    Connect,
    Disconnect,
}

impl EventAction {
    pub const fn as_str(self) -> &'static str {
        match self {
            EventAction::Sync => "Sync",
            EventAction::Connect => "Connect",
            EventAction::Disconnect => "Disconnect",
        }
    }
}

/// One event to publish about an object.
#[derive(Debug, Clone)]
pub struct Note<'a> {
    pub type_: EventType,
    pub reason: &'a str,
    pub action: &'a str,
    pub note: &'a str,
}

/// What a later publish of the same message needs to extend the series: a
/// few dozen bytes, where the whole Event was ~1.5 KB (with thousands of
/// spaces synced in the last minutes, that was tens of MB held at idle).
#[derive(Debug, Clone)]
struct Published {
    namespace: String,
    name: String,
    count: i32,
    last_seen: Timestamp,
}

pub struct EventRecorder {
    client: Client,
    controller: String,
    instance: String,
    published: Mutex<HashMap<Key, Published>>,
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
        published.retain(|_, p| p.last_seen + SERIES_TTL > now);
        let entry = match published.get(&key) {
            Some(previous) => {
                // Only the series changes: a merge patch of just that.
                let count = previous.count + 1;
                let series = EventSeries {
                    count,
                    last_observed_time: MicroTime(now),
                };
                let api: Api<Event> = Api::namespaced(self.client.clone(), &previous.namespace);
                api.patch(
                    &previous.name,
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({ "series": series })),
                )
                .await?;
                Published {
                    count,
                    last_seen: now,
                    ..previous.clone()
                }
            }
            None => {
                let namespace = regarding.namespace.as_deref().unwrap_or("default");
                let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
                let event = api
                    .create(&PostParams::default(), &self.new_event(ev, regarding, now))
                    .await?;
                Published {
                    namespace: namespace.to_string(),
                    name: event.name_any(),
                    count: 1,
                    last_seen: now,
                }
            }
        };
        published.insert(key, entry);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_keep_their_strings() {
        assert_eq!(EventAction::Sync.as_str(), "Sync");
        assert_eq!(EventAction::Connect.as_str(), "Connect");
        assert_eq!(EventAction::Disconnect.as_str(), "Disconnect");
    }
}
