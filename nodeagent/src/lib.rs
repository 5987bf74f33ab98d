//! Node agent: runs pods on Linux (namespaces, cgroups, pod network) and a hollow mode for scale tests. Not built yet: see its issue.
