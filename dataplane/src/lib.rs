//! Service proxy programming nftables. Not built yet: see its issue.
