//! HTTP-level tests of the API server over the in-memory storage test double.

mod support;
mod t10_discovery;
mod t20_crud;
mod t30_watch;
mod t40_writes;
