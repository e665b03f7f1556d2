//! One long operation of a kind per redis at a time: two backups would stream two snapshots
//! from one replica, and a restore and an import (two of either, or one of each) would each
//! replace the same data under the other.

use crate::error::ServerError;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use vd_core::ResourceRef;

/// A long operation on a redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `vd redis:backup` or a scheduled backup.
    Backup,
    /// `vd redis:restore` (and `vd redis:import --rdb`).
    Restore,
    /// `vd redis:import`.
    Import,
}

impl Operation {
    /// Operations sharing a slot exclude each other.
    fn slot(self) -> u8 {
        match self {
            Operation::Backup => 0,
            Operation::Restore | Operation::Import => 1,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Backup => "a backup",
            Operation::Restore => "a restore",
            Operation::Import => "an import",
        })
    }
}

static RUNNING: Mutex<BTreeMap<(ResourceRef, u8), Operation>> = Mutex::new(BTreeMap::new());

/// Held while an operation runs; dropping it lets the next one start.
#[derive(Debug)]
pub struct Claim {
    id: ResourceRef,
    slot: u8,
}

/// Claims `id` for `op`, or says which operation holds it.
pub fn claim(id: &ResourceRef, op: Operation) -> Result<Claim, ServerError> {
    let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    let key = (id.clone(), op.slot());
    if let Some(other) = running.get(&key) {
        return Err(ServerError::conflict(
            format!("{other} of {id} is already running"),
            "wait for it to finish, then retry",
        ));
    }
    running.insert(key, op);
    Ok(Claim {
        id: id.clone(),
        slot: op.slot(),
    })
}

impl Drop for Claim {
    fn drop(&mut self) {
        RUNNING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(self.id.clone(), self.slot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vd_core::Kind;

    #[test]
    fn restore_and_import_exclude_each_other_backups_do_not() {
        let id = ResourceRef::new(Kind::Redis, "exclusive-test", "cache");
        let restore = claim(&id, Operation::Restore).unwrap();
        let e = claim(&id, Operation::Import).unwrap_err();
        assert!(e.to_string().contains("a restore of"), "{e}");
        let backup = claim(&id, Operation::Backup).unwrap();
        assert!(claim(&id, Operation::Backup).is_err());
        drop(restore);
        let _import = claim(&id, Operation::Import).unwrap();
        drop(backup);
        let _backup = claim(&id, Operation::Backup).unwrap();
    }
}
