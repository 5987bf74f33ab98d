//! Batched, plugin-based pod scheduler (Filter/Score plugins over one snapshot). Not built yet: see its issue.
