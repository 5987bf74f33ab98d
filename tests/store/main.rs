//! End-to-end tests of the store: real `navarch store` processes on loopback, real etcdctl,
//! real kill -9, a linearizability checker.

mod support;
mod t05_lincheck;
mod t06_lincheck_store;
mod t10_etcdctl;
mod t20_bad_input;
mod t25_watch;
mod t30_cluster_faults;
mod t35_snapshot;
mod t40_linearizability;
mod t42_group_commit;
mod t50_leases;
mod t60_quic;
mod t70_shards;
mod t75_membership;
mod t80_partition;
mod t85_disk_full;
