//! Label and field selectors: the `labelSelector` / `fieldSelector` query grammar and matching.
//!
//! The label grammar is apimachinery's `labels.Parse`: comma-separated requirements of the forms
//! `key`, `!key`, `key=v`, `key==v`, `key!=v`, `key in (a,b)`, `key notin (a,b)`, `key>n`, `key<n`.
//! Field selectors are `field=v`, `field==v` or `field!=v` terms over the fields each kind
//! supports (kube-apiserver's field label conversion functions).

mod field;
mod label;

pub use field::{FieldSelector, FieldTerm};
pub use label::{LabelSelector, Operator, Requirement};
