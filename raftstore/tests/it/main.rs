//! Integration tests of the raftstore crate (in-process, no network).

mod t10_storage_suite;
mod t20_mvcc_model;
