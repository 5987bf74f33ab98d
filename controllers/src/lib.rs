//! Reconcile loops (Deployment, ReplicaSet, node lifecycle, EndpointSlice, namespace, GC). Not built yet: see its issue.
