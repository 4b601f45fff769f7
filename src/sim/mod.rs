//! Confluence simulator.
