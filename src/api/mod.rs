//! Custom resource types (`confluence-operator.io/v1alpha1`), generated into
//! `crds/` by the `crdgen` binary.

pub mod binding;
pub mod conditions;
pub mod crds;
pub mod duration;
pub mod outcome;
pub mod site;
pub mod space;

pub use binding::{ViewerBinding, ViewerBindingSpec, ViewerBindingStatus};
pub use outcome::Outcome;
pub use site::{ConfluenceSite, ConfluenceSiteSpec, ConfluenceSiteStatus};
pub use space::{ConfluenceSpace, ConfluenceSpaceSpec, ConfluenceSpaceStatus};

/// API group of every resource this operator owns.
pub const GROUP: &str = "confluence-operator.io";

/// Setting this annotation to any new value (e.g. a timestamp) requests one
/// immediate sync, like Flux's `reconcile.fluxcd.io/requestedAt`. On a site it
/// resyncs every space of the site.
pub const RESYNC_ANNOTATION: &str = "confluence-operator.io/requestedAt";

/// Written at admission (by the chart's MutatingAdmissionPolicy) with the
/// identity that created the object; copied to `status.connectedBy`.
pub const CONNECTED_BY_ANNOTATION: &str = "confluence-operator.io/connected-by";

/// Finalizer that removes a space's content from every store before the
/// object goes away.
pub const SPACE_FINALIZER: &str = "confluence-operator.io/content-cleanup";

/// Reference to an object in the same namespace.
#[derive(
    serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema,
)]
pub struct LocalObjectReference {
    /// Name of the object, in the same namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
}
