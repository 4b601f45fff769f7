//! `ConfluenceSpace`: one space to sync, and who may view its content.

use super::LocalObjectReference;
use super::outcome::Outcome;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A Confluence space whose pages are synced into the knowledge stores.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "confluence-operator.io",
    version = "v1alpha1",
    kind = "ConfluenceSpace",
    namespaced,
    status = "ConfluenceSpaceStatus",
    shortname = "cspace",
    category = "confluence",
    printcolumn = r#"{"name":"SITE","type":"string","jsonPath":".spec.siteRef.name"}"#,
    printcolumn = r#"{"name":"SPACE","type":"string","jsonPath":".spec.spaceKey"}"#,
    printcolumn = r#"{"name":"ITEMS","type":"integer","jsonPath":".status.items"}"#,
    printcolumn = r#"{"name":"STATUS","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"LAST SYNCED","type":"date","jsonPath":".status.lastSyncedAt"}"#,
    printcolumn = r#"{"name":"VIEWERS","type":"string","priority":1,"jsonPath":".status.viewers"}"#,
    printcolumn = r#"{"name":"MESSAGE","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ConfluenceSpaceSpec {
    /// The ConfluenceSite (same namespace) this space belongs to. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("siteRef is immutable: create a new ConfluenceSpace instead"))]
    pub site_ref: LocalObjectReference,

    /// Key of the space, e.g. `ENG`. Personal spaces (keys starting with `~`)
    /// are refused. Immutable.
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(
        validation = Rule::new("!self.startsWith('~')").message("personal spaces (keys starting with ~) cannot be synced"),
        validation = Rule::new("self == oldSelf").message("spaceKey is immutable: create a new ConfluenceSpace instead"),
        validation = Rule::new("self.matches('^[~A-Za-z0-9_.-]+$')").message("spaceKey may contain only letters, digits, '_', '.' and '-'")
    )]
    pub space_key: String,

    /// Who may view this space's content wherever it is served.
    pub viewers: Viewers,

    /// What to sync from the space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,

    /// Overrides the site's sync interval for this space (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    #[x_kube(
        validation = Rule::new("duration(self) >= duration('1m')").message("syncInterval must be at least 1m"),
        validation = Rule::new("duration(self) <= duration('87600h')").message("syncInterval must be at most 87600h (10 years)")
    )]
    pub sync_interval: Option<String>,

    /// Stops syncing this space (content already synced stays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum Visibility {
    /// Anyone, including anonymous callers.
    Everyone,
    /// Only callers holding at least one of `segments`.
    Segments,
}

/// Viewer segments for a space's content.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.visibility == 'Segments' ? (has(self.segments) && size(self.segments) > 0) : (!has(self.segments) || size(self.segments) == 0)").message("segments must list 1 to 10 segments when visibility is Segments, and be empty when visibility is Everyone"))]
pub struct Viewers {
    pub visibility: Visibility,
    /// 1 to 10 unique segments: `signed-in-users`, `agents-and-admins`, or custom names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 10),
        inner(
            length(min = 1, max = 63),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub segments: Vec<String>,
}

impl Viewers {
    /// The audience stores attach to this space's documents.
    pub fn audience(&self) -> crate::model::Audience {
        match self.visibility {
            Visibility::Everyone => crate::model::Audience::Everyone,
            Visibility::Segments => crate::model::Audience::Segments(self.segments.clone()),
        }
    }

    /// Short human form for the printer column, e.g. `Everyone` or `agents-and-admins,partners`.
    pub fn summary(&self) -> String {
        match self.visibility {
            Visibility::Everyone => "Everyone".to_string(),
            Visibility::Segments => self.segments.join(","),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ContentKind {
    Page,
    Blogpost,
}

/// Narrows what is synced.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Filters {
    /// Only content with at least one of these labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(min = 1, max = 255)))]
    pub include_labels: Vec<String>,
    /// Never content with any of these labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(min = 1, max = 255)))]
    pub exclude_labels: Vec<String>,
    /// Content types to sync (default: pages only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub content_types: Vec<ContentKind>,
    /// Also sync pages with page-level view restrictions. Off by default, so
    /// restricted content never reaches a wider audience than Confluence allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_restricted: Option<bool>,
}

/// Where the space is in its sync cycle.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum SyncPhase {
    Pending,
    Syncing,
    Synced,
    Failed,
    Suspended,
}

/// Figures of the last finished sync attempt.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncResult {
    /// `Succeeded` or `Failed`.
    #[schemars(with = "String")]
    pub result: Outcome,
    /// When the sync ended.
    pub finished_at: Option<Time>,
    /// How long the sync attempt took.
    pub duration_seconds: f64,
    /// Bodies fetched because they were new or changed.
    pub fetched: u64,
    /// Items removed because Confluence no longer lists them.
    pub deleted: u64,
    /// Items whose stored version was current: not fetched again.
    pub unchanged: u64,
    /// Items Confluence listed that were not synced, by reason. Always
    /// written (null when none) so a status merge patch clears old counts.
    #[serde(default)]
    pub left_out: Option<LeftOutCounts>,
    /// Items missing from the listing that a direct lookup found still in
    /// Confluence: kept rather than deleted.
    #[serde(default)]
    pub kept_unconfirmed: Option<u64>,
    /// A one-line summary of the sync, or why it failed.
    pub message: String,
}

/// Listed items left out of a sync, by reason.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeftOutCounts {
    /// The item has a view restriction of its own.
    pub restricted: u64,
    /// A parent up the tree (page, folder, whiteboard, database, embed) has one.
    pub restricted_ancestor: u64,
    /// Restrictions or labels could not be read (for the item or a parent):
    /// left out until a later sync can vet it.
    pub unverifiable: u64,
    /// Excluded by `spec.filters` labels.
    pub labels: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfluenceSpaceStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status was written for: when it is
    /// behind the object's, the operator has not acted on the latest spec yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the space was connected (the object's creation time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Time>,
    /// Who connected the space (the identity that created the object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_by: Option<String>,
    /// Items (pages, blog posts) currently synced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<u64>,
    /// Where the space is in its sync cycle (the STATUS column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SyncPhase>,
    /// When the last successful sync finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_synced_at: Option<Time>,
    /// The outcome and counts of the last sync, successful or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_result: Option<SyncResult>,
    /// Link to the space in Confluence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The space's display name in Confluence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space_name: Option<String>,
    /// Viewer segments in effect, for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewers: Option<String>,
    /// Last value of this space's resync annotation that was acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_resync_at: Option<String>,
    /// Last value of the site's resync annotation that was acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_site_resync_at: Option<String>,
}
