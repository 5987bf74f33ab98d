//! Kubernetes object model: types, defaulting, validation, selectors, patch rules, Status errors. Not built yet: see its issue.
