//! `ViewerBinding`: which callers of the search API and `/mcp` hold which
//! viewer segments, declared like an RBAC binding.
//!
//! Cluster-scoped on purpose: a segment is one name across the whole
//! operator (spaces in every namespace use the same `agents-and-admins`), so
//! granting it is a cluster-wide act. A namespaced binding would let anyone
//! allowed to create objects in some namespace grant themselves a segment
//! that opens spaces of other namespaces.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Grants `segments` to every caller matching one of `subjects`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "confluence-operator.io",
    version = "v1alpha1",
    kind = "ViewerBinding",
    status = "ViewerBindingStatus",
    shortname = "vb",
    category = "confluence",
    printcolumn = r#"{"name":"SEGMENTS","type":"string","jsonPath":".status.segments"}"#,
    printcolumn = r#"{"name":"SUBJECTS","type":"integer","jsonPath":".status.subjects"}"#,
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ViewerBindingSpec {
    /// Segments granted: 1 to 10 unique lowercase DNS labels, e.g.
    /// `agents-and-admins`. `signed-in-users` needs no binding: every caller
    /// with a valid token holds it.
    #[schemars(
        length(min = 1, max = 10),
        inner(
            length(min = 1, max = 63),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
        )
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub segments: Vec<String>,

    /// Who holds the segments: 1 to 100 subjects.
    #[schemars(length(min = 1, max = 100))]
    pub subjects: Vec<Subject>,
}

/// Kind of a [`Subject`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum SubjectKind {
    /// A Kubernetes ServiceAccount (`name` + `namespace`).
    ServiceAccount,
    /// A user name as the verifier reports it (TokenReview username, the
    /// OIDC username claim, or the gateway's user header).
    User,
    /// A group as the verifier reports it.
    Group,
    /// An OIDC token claim (`claim`) equal to, or a list containing, `value`.
    Claim,
}

/// One identity, or set of identities, a binding applies to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.kind == 'ServiceAccount' ? (has(self.name) && has(self.__namespace__)) : !has(self.__namespace__)").message("ServiceAccount subjects need name and namespace; only they may set namespace"),
    validation = Rule::new("(self.kind == 'User' || self.kind == 'Group') ? has(self.name) : true").message("User and Group subjects need a name"),
    validation = Rule::new("self.kind == 'Claim' ? (has(self.claim) && has(self.value) && !has(self.name)) : (!has(self.claim) && !has(self.value))").message("Claim subjects need claim and value (and no name); other kinds may not set claim or value"),
    validation = Rule::new("self.kind != 'ServiceAccount' || !has(self.name) || self.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("a ServiceAccount name must be a lowercase DNS subdomain")
)]
pub struct Subject {
    pub kind: SubjectKind,
    /// ServiceAccount, user or group name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub name: Option<String>,
    /// Namespace of a ServiceAccount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,
    /// Name of an OIDC claim, e.g. `email` or `groups`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub claim: Option<String>,
    /// Value the claim must equal (or, for a list claim, contain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub value: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViewerBindingStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status was written for: when it is
    /// behind the object's, the operator has not acted on the latest spec yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Subjects in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subjects: Option<u32>,
    /// Segments granted, for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<String>,
}
