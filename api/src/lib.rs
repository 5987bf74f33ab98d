//! Kubernetes object model: resource registry, defaulting, validation, selectors, patch rules, Table output, Status errors.

// `ApiError` carries a full Kubernetes Status (message, details, causes); errors are rare and
// returned straight to the client, so boxing them everywhere would cost clarity for nothing.
#![allow(clippy::result_large_err)]

pub mod openapi;
pub mod patch;
pub mod resources;
pub mod selectors;
pub mod status;
pub mod table;
pub mod validation;

pub use status::{ApiError, Cause, StatusReason};
