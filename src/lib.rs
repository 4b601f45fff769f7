//! confluence-operator: syncs Confluence spaces into permission-aware knowledge stores.

pub mod allocator;
pub mod api;
pub mod auth;
pub mod confluence;
pub mod controller;
pub mod kubeclient;
pub mod leader;
pub mod model;
pub mod reflect;
pub mod server;
pub mod store;
pub mod sync;
pub mod telemetry;
