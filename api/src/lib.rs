//! Kubernetes object model: resource registry, defaulting, validation, selectors, patch rules, Table output, Status errors.

pub mod openapi;
pub mod patch;
pub mod resources;
pub mod selectors;
pub mod status;
pub mod table;
pub mod validation;

pub use status::{ApiError, Cause, StatusReason};
