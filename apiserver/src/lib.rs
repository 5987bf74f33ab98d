//! Stateless Kubernetes REST API with a watch cache. Not built yet: see its issue.
