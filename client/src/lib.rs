//! Typed REST client and controller runtime (watcher, reflector, leader election). Not built yet: see its issue.
