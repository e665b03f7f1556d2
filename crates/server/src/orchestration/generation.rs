//! Desired-hash generations: per workload, a number that grows every time its desired hash
//! changes (a spec change, a bucket write, an asset's content, `vd restart`).
//!
//! `vd apply` waits for its change to roll out. Waiting for the exact hash it computed would
//! wait forever once a later change (a bucket write the controller makes, say after a
//! failover) moves the desired hash on; waiting for "converged at this generation or a later
//! one" stays true. The numbers live in memory; each server starts its count at its start time
//! in milliseconds, far above what the previous server counted to, so a waiter that saw the
//! numbers of a server that has since restarted is not left waiting either.

use std::collections::BTreeMap;
use vd_core::ResourceRef;

/// The generation of each workload's desired hash.
#[derive(Debug)]
pub struct Generations {
    first: u64,
    seen: BTreeMap<ResourceRef, (String, u64)>,
}

impl Generations {
    /// Counting from `first` (the server's start time in milliseconds).
    pub fn new(first: u64) -> Generations {
        Generations {
            first,
            seen: BTreeMap::new(),
        }
    }

    /// The generation of `hash` as `id`'s desired hash now: the same number while the hash
    /// stays, one more when it changed.
    pub fn note(&mut self, id: &ResourceRef, hash: &str) -> u64 {
        let first = self.first;
        let entry = self
            .seen
            .entry(id.clone())
            .or_insert_with(|| (hash.to_string(), first));
        if entry.0 != hash {
            entry.0 = hash.to_string();
            entry.1 = entry.1.saturating_add(1);
        }
        entry.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vd_core::Kind;

    #[test]
    fn a_generation_grows_only_when_the_hash_changes() {
        let a = ResourceRef::new(Kind::Redis, "data", "cache");
        let b = ResourceRef::new(Kind::Statefulset, "web", "app");
        let mut g = Generations::new(1_000);
        let steps = [
            (&a, "h1", 1_000, "first sight: the start"),
            (&a, "h1", 1_000, "same hash"),
            (&b, "x1", 1_000, "each workload counts alone"),
            (&a, "h2", 1_001, "a new hash"),
            (&a, "h2", 1_001, "seen again"),
            (&a, "h1", 1_002, "back to an old hash is a change too"),
            (&b, "x1", 1_000, "the other one did not move"),
        ];
        for (id, hash, want, what) in steps {
            assert_eq!(g.note(id, hash), want, "{what}");
        }
    }

    #[test]
    fn a_later_server_counts_above_an_earlier_one() {
        let a = ResourceRef::new(Kind::Redis, "data", "cache");
        let mut before = Generations::new(1_000);
        for h in ["1", "2", "3"] {
            before.note(&a, h);
        }
        let mut after = Generations::new(5_000);
        assert!(after.note(&a, "3") > before.note(&a, "3"));
    }
}
