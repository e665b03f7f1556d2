//! Spec hashing: one digest over everything that, when changed, must replace a pod.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Hex SHA-256 of the canonical JSON of `value` (maps are ordered, so equal specs hash equal).
pub fn spec_hash<T: Serialize>(value: &T) -> String {
    // Serializing plain model structs cannot fail: they hold only strings, numbers and maps
    // with string keys.
    let json = serde_json::to_vec(value).unwrap_or_default();
    content_digest(&json)
}

/// Hex SHA-256 of raw bytes, used for asset contents.
pub fn content_digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The first 12 hex characters of a hash, as shown to users.
pub fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn stable_and_sensitive() {
        let a = BTreeMap::from([("x", 1), ("y", 2)]);
        let mut b = BTreeMap::new();
        b.insert("y", 2);
        b.insert("x", 1);
        assert_eq!(spec_hash(&a), spec_hash(&b));
        b.insert("x", 3);
        assert_ne!(spec_hash(&a), spec_hash(&b));
        assert_eq!(short(&spec_hash(&a)).len(), 12);
    }
}
