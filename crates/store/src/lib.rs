//! vd's store: one SQLite file, `<root>/vd.db`, written only by the server process.
//!
//! It holds the desired specs with their revisions (and a history of earlier revisions),
//! config buckets, events, per-pod loopback address allocations, the last observed pod
//! status, and a small key-value table for anything else, whose keys are [`MetaKey`]s.
//!
//! The API is synchronous: every call is one short statement or one short transaction on a
//! connection behind a mutex, so the server can call it from async code. Times are unix
//! milliseconds. The file is created with mode 0600 (config buckets hold passwords), runs in WAL
//! mode with a busy timeout, and its schema is versioned with `PRAGMA user_version`.
//!
//! Nothing read from disk is unwrapped: every failure is a [`StoreError`].

#![warn(missing_docs)]

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Display;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use vd_core::{Kind, Resource, ResourceRef, Spec};

pub mod meta;
pub use meta::{HaState, MetaKey, StoredLinkMode, UnknownValue, DERIVED_MARKER};
pub use vd_core::event::{Level, Reason};

/// Writes resources inside a transaction; what changed, per resource.
fn write_resources(
    tx: &rusqlite::Transaction<'_>,
    resources: &[Resource],
) -> Result<Vec<Change>, StoreError> {
    let now = now_ms();
    let mut changes = Vec::with_capacity(resources.len());
    for r in resources {
        let (kind, revision) = decide(tx, r)?;
        let spec = serde_json::to_string(&r.spec)?;
        let (k, s, n) = (r.id.kind.as_str(), &r.id.scope, &r.id.name);
        let rev = to_i64(revision)?;
        let oldest_dropped = to_i64(revision.saturating_sub(HISTORY_KEEP))?;
        match kind {
            ChangeKind::Unchanged => {}
            ChangeKind::Created => {
                tx.execute(
                        "INSERT INTO resources (kind, scope, name, spec, revision, created_ms, updated_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                        params![k, s, n, spec, rev, now],
                    )?;
            }
            ChangeKind::Changed => {
                tx.execute(
                    "UPDATE resources SET spec = ?4, revision = ?5, updated_ms = ?6
                         WHERE kind = ?1 AND scope = ?2 AND name = ?3",
                    params![k, s, n, spec, rev, now],
                )?;
            }
        }
        if kind != ChangeKind::Unchanged {
            tx.execute(
                    "INSERT OR REPLACE INTO resource_history (kind, scope, name, revision, spec, written_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![k, s, n, rev, spec, now],
                )?;
            tx.execute(
                "DELETE FROM resource_history
                     WHERE kind = ?1 AND scope = ?2 AND name = ?3 AND revision <= ?4",
                params![k, s, n, oldest_dropped],
            )?;
        }
        changes.push(Change {
            id: r.id.clone(),
            kind,
            revision,
        });
    }
    Ok(changes)
}

/// Refuses a bucket write that names no scope or variable, or sets and unsets one variable.
fn check_bucket_write(
    scope: &str,
    set: &BTreeMap<String, String>,
    unset: &[String],
) -> Result<(), StoreError> {
    if scope.is_empty() {
        return Err(StoreError::Invalid("config bucket scope is empty".into()));
    }
    if set.keys().chain(unset).any(String::is_empty) {
        return Err(StoreError::Invalid("config variable name is empty".into()));
    }
    if let Some(k) = unset.iter().find(|k| set.contains_key(*k)) {
        return Err(StoreError::Invalid(format!(
            "config variable `{k}` is both set and unset"
        )));
    }
    Ok(())
}

/// Sets and unsets variables of one bucket level inside a transaction, bumping its revision
/// when anything changed; returns whether it did.
fn write_bucket(
    tx: &rusqlite::Transaction<'_>,
    scope: &str,
    name: &str,
    set: &BTreeMap<String, String>,
    unset: &[String],
) -> Result<bool, StoreError> {
    let current = read_bucket(tx, scope, name)?;
    let mut changed = false;
    for (k, v) in set {
        if current.get(k) != Some(v) {
            tx.execute(
                "INSERT OR REPLACE INTO config (scope, name, key, value) VALUES (?1, ?2, ?3, ?4)",
                params![scope, name, k, v],
            )?;
            changed = true;
        }
    }
    for k in unset {
        if current.contains_key(k) {
            tx.execute(
                "DELETE FROM config WHERE scope = ?1 AND name = ?2 AND key = ?3",
                params![scope, name, k],
            )?;
            changed = true;
        }
    }
    if changed {
        tx.execute(
            "INSERT INTO config_buckets (scope, name, revision, updated_ms) VALUES (?1, ?2, 1, ?3)
             ON CONFLICT (scope, name) DO UPDATE SET revision = revision + 1, updated_ms = ?3",
            params![scope, name, now_ms()],
        )?;
    }
    Ok(changed)
}

/// One apply as the store writes it ([`Store::apply_batch`]).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Resources to create or update.
    pub resources: Vec<Resource>,
    /// Variables to set in config buckets.
    pub config: Vec<BucketWrite>,
    /// Meta records to set.
    pub meta: Vec<(MetaKey, String)>,
}

/// Variables to set in one bucket level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketWrite {
    /// The scope.
    pub scope: String,
    /// The name level; `None` for the scope level.
    pub name: Option<String>,
    /// The variables.
    pub set: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests;

/// How long a statement waits for a lock held by another connection before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How many revisions of one resource [`Store::history`] keeps (the newest ones).
pub const HISTORY_KEEP: u64 = 100;

/// How many events the store keeps; older ones are pruned as new ones are recorded.
pub const EVENTS_KEEP: usize = 100_000;

/// The event levels [`Store::record_event`] accepts: the names of every [`Level`].
pub const EVENT_LEVELS: [&str; 3] = ["info", "warning", "error"];

/// Schema migrations; migration `i` takes the schema from `user_version` `i` to `i + 1`.
/// Append only: never edit a migration that has shipped.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE resources (
    kind       TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    spec       TEXT    NOT NULL,
    revision   INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, scope, name)
);
CREATE TABLE resource_history (
    kind       TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    revision   INTEGER NOT NULL,
    spec       TEXT    NOT NULL,
    written_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, scope, name, revision)
);
CREATE TABLE config (
    scope TEXT NOT NULL,
    name  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (scope, name, key)
);
CREATE TABLE config_buckets (
    scope      TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    revision   INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (scope, name)
);
CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms   INTEGER NOT NULL,
    level   TEXT    NOT NULL,
    kind    TEXT,
    scope   TEXT,
    name    TEXT,
    pod     TEXT,
    reason  TEXT    NOT NULL,
    message TEXT    NOT NULL
);
CREATE INDEX events_by_resource ON events (kind, scope, name, id);
CREATE TABLE addresses (
    pod TEXT PRIMARY KEY,
    ip  TEXT NOT NULL UNIQUE
);
CREATE TABLE pod_status (
    pod        TEXT    PRIMARY KEY,
    kind       TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"#];

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (locked past the busy timeout, disk full, corrupt file, constraint…).
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored or given value did not (de)serialize.
    #[error("store: bad JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Creating the file or setting its permissions failed.
    #[error("store: {0}")]
    Io(#[from] std::io::Error),
    /// The thing asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The request cannot be done in the current state (e.g. no free address left).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request, or data found on disk, is malformed.
    #[error("invalid: {0}")]
    Invalid(String),
    /// A value of the `meta` table does not have the form its key's family stores (not JSON
    /// of the expected shape, not a number, not one of the allowed words).
    #[error("store: the value of meta key `{key}` is unreadable: {message}")]
    CorruptMeta {
        /// The key whose value is unreadable.
        key: MetaKey,
        /// What is wrong with it.
        message: String,
    },
}

/// A desired resource as stored, with its revision and timestamps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredResource {
    /// The resource as last applied.
    pub resource: Resource,
    /// 1 when created, bumped by each apply that changed the spec.
    pub revision: u64,
    /// When revision 1 was written (unix ms).
    pub created_ms: i64,
    /// When the current revision was written (unix ms).
    pub updated_ms: i64,
}

/// What [`Store::apply`] did (or would do) to one resource.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// It did not exist; stored as revision 1.
    Created,
    /// Its spec differed; the revision was bumped.
    Changed,
    /// Its spec was the same; nothing written.
    Unchanged,
}

/// The outcome of applying one resource.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Change {
    /// Which resource.
    pub id: ResourceRef,
    /// What happened to it.
    pub kind: ChangeKind,
    /// Its revision after the apply.
    pub revision: u64,
}

/// A recorded event.
///
/// `level` and `reason` are the strings as stored and as the API sends them; [`Event::level`]
/// and [`Event::reason`] give them as a [`Level`] and a [`Reason`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Increasing id; never reused, so `after_id` polling is safe.
    pub id: i64,
    /// When it was recorded (unix ms).
    pub ts_ms: i64,
    /// `"info"`, `"warning"` or `"error"` (see [`Level`]).
    pub level: String,
    /// The resource it concerns, if any.
    pub resource: Option<ResourceRef>,
    /// The pod it concerns, if any (e.g. `data-cache.0`).
    pub pod: Option<String>,
    /// A short CamelCase reason (`Started`, `Failover`, …; see [`Reason`]).
    pub reason: String,
    /// A human sentence. Never put secrets here.
    pub message: String,
}

impl Event {
    /// The level as a [`Level`]; `None` only for a level name no vd records (the store has
    /// always refused others), e.g. in JSON that did not come from vd.
    pub fn level(&self) -> Option<Level> {
        self.level.parse().ok()
    }

    /// The reason as a [`Reason`]; a name outside the vocabulary is [`Reason::Other`].
    pub fn reason(&self) -> Reason {
        Reason::from(self.reason.as_str())
    }
}

/// An event to record with [`Store::record_event`]; the store assigns its id and timestamp.
/// [`Store::record`] takes the same with a typed level and reason.
#[derive(Debug, Clone, Copy)]
pub struct NewEvent<'a> {
    /// `"info"`, `"warning"` or `"error"`.
    pub level: &'a str,
    /// The resource it concerns, if any.
    pub resource: Option<&'a ResourceRef>,
    /// The pod it concerns, if any.
    pub pod: Option<&'a str>,
    /// A short CamelCase reason.
    pub reason: &'a str,
    /// A human sentence. Never put secrets here.
    pub message: &'a str,
}

/// The store: one SQLite connection behind a mutex.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store file at `path`, usually `<root>/vd.db`.
    ///
    /// A missing parent directory is created with mode 0700. The file is created with mode
    /// 0600 before SQLite touches it, and the file and its `-wal`/`-shm` companions are set to
    /// 0600 after opening. Turns on WAL mode, sets the busy timeout and migrates the schema;
    /// fails with [`StoreError::Invalid`] if the file was written by a newer vd.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() && !parent.exists() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)?;
            }
        }
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
        restrict(path)?;

        let mut conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Invalid(format!(
                "{}: could not switch to WAL journal mode (got `{mode}`)",
                path.display()
            )));
        }
        // FULL: a failover epoch must be on disk before the controller acts on it.
        conn.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut conn, path)?;
        for suffix in ["-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            let p = PathBuf::from(p);
            if p.exists() {
                restrict(&p)?;
            }
        }
        Ok(Store {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    /// The path this store was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock drops any open transaction (rolling it back), so the
        // connection is still consistent.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---------------------------------------------------------------- desired specs

    /// Stores resources in one transaction and reports what happened to each, in input order.
    ///
    /// A resource that does not exist is inserted as revision 1 ([`ChangeKind::Created`]); one
    /// whose spec differs from the stored one (compared as JSON values) gets the next revision
    /// ([`ChangeKind::Changed`]); otherwise nothing is written ([`ChangeKind::Unchanged`]).
    /// Every written revision is also kept in the history (the newest [`HISTORY_KEEP`]).
    /// The same id twice in one call is [`StoreError::Invalid`]; any error writes nothing.
    pub fn apply(&self, resources: &[Resource]) -> Result<Vec<Change>, StoreError> {
        self.apply_batch(&Batch {
            resources: resources.to_vec(),
            ..Batch::default()
        })
    }

    /// Writes an apply in one transaction: its resources, the config it generated (a new
    /// password, HA settings) and meta records. Either everything is stored or nothing is.
    pub fn apply_batch(&self, batch: &Batch) -> Result<Vec<Change>, StoreError> {
        check_unique(&batch.resources)?;
        for w in &batch.config {
            check_bucket_write(&w.scope, &w.set, &[])?;
        }
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changes = write_resources(&tx, &batch.resources)?;
        for w in &batch.config {
            write_bucket(&tx, &w.scope, level(w.name.as_deref()), &w.set, &[])?;
        }
        for (key, value) in &batch.meta {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                params![key.key(), value],
            )?;
        }
        tx.commit()?;
        Ok(changes)
    }

    /// What [`Store::apply`] would report for these resources, without writing anything.
    pub fn plan_apply(&self, resources: &[Resource]) -> Result<Vec<Change>, StoreError> {
        check_unique(resources)?;
        let conn = self.lock();
        resources
            .iter()
            .map(|r| {
                let (kind, revision) = decide(&conn, r)?;
                Ok(Change {
                    id: r.id.clone(),
                    kind,
                    revision,
                })
            })
            .collect()
    }

    /// One stored resource, if it exists.
    pub fn get(&self, id: &ResourceRef) -> Result<Option<StoredResource>, StoreError> {
        let conn = self.lock();
        let row = conn
            .query_row(
                "SELECT spec, revision, created_ms, updated_ms FROM resources
                 WHERE kind = ?1 AND scope = ?2 AND name = ?3",
                params![id.kind.as_str(), id.scope, id.name],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get(2)?,
                        r.get(3)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(spec, rev, created_ms, updated_ms)| {
            Ok(StoredResource {
                resource: Resource {
                    id: id.clone(),
                    spec: parse_spec(id, &spec)?,
                },
                revision: to_u64(rev)?,
                created_ms,
                updated_ms,
            })
        })
        .transpose()
    }

    /// Every stored resource (or those of one kind), ordered by kind (in [`Kind::ALL`] order:
    /// assets, statefulsets, deployments), then scope, then name.
    pub fn list(&self, kind: Option<Kind>) -> Result<Vec<StoredResource>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT kind, scope, name, spec, revision, created_ms, updated_ms FROM resources
             WHERE ?1 IS NULL OR kind = ?1",
        )?;
        let rows = stmt
            .query_map(params![kind.map(Kind::as_str)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = rows
            .into_iter()
            .map(|(k, scope, name, spec, rev, created_ms, updated_ms)| {
                let id = ResourceRef::new(parse_kind(&k)?, scope, name);
                let spec = parse_spec(&id, &spec)?;
                Ok(StoredResource {
                    resource: Resource { id, spec },
                    revision: to_u64(rev)?,
                    created_ms,
                    updated_ms,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| {
            let (a, b) = (&a.resource.id, &b.resource.id);
            (kind_rank(a.kind), &a.scope, &a.name).cmp(&(kind_rank(b.kind), &b.scope, &b.name))
        });
        Ok(out)
    }

    /// Every kept revision of a resource, oldest first, as (revision, resource, unix ms when
    /// that revision was written). Includes the current revision; empty if the resource was
    /// never applied or has been deleted.
    pub fn history(&self, id: &ResourceRef) -> Result<Vec<(u64, Resource, i64)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT revision, spec, written_ms FROM resource_history
             WHERE kind = ?1 AND scope = ?2 AND name = ?3 ORDER BY revision",
        )?;
        let rows = stmt
            .query_map(params![id.kind.as_str(), id.scope, id.name], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(rev, spec, ts)| {
                Ok((
                    to_u64(rev)?,
                    Resource {
                        id: id.clone(),
                        spec: parse_spec(id, &spec)?,
                    },
                    ts,
                ))
            })
            .collect()
    }

    /// Removes a resource and its history; returns whether it existed. Config buckets, events,
    /// addresses and pod statuses are left alone (the server decides about those).
    pub fn delete(&self, id: &ResourceRef) -> Result<bool, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let args = params![id.kind.as_str(), id.scope, id.name];
        let n = tx.execute(
            "DELETE FROM resources WHERE kind = ?1 AND scope = ?2 AND name = ?3",
            args,
        )?;
        tx.execute(
            "DELETE FROM resource_history WHERE kind = ?1 AND scope = ?2 AND name = ?3",
            args,
        )?;
        tx.commit()?;
        Ok(n > 0)
    }

    // ---------------------------------------------------------------- config buckets

    /// The variables of exactly one bucket level: the scope level when `name` is `None` (or
    /// `Some("")`), the name level otherwise. Empty if the bucket does not exist.
    pub fn config_get(
        &self,
        scope: &str,
        name: Option<&str>,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let conn = self.lock();
        read_bucket(&conn, scope, level(name))
    }

    /// The scope level merged with the `name` level; the name level wins per key.
    pub fn config_effective(
        &self,
        scope: &str,
        name: &str,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let conn = self.lock();
        let mut vars = read_bucket(&conn, scope, "")?;
        if !name.is_empty() {
            vars.extend(read_bucket(&conn, scope, name)?);
        }
        Ok(vars)
    }

    /// Sets and unsets variables of one bucket level in one transaction; returns whether
    /// anything changed. A change bumps the bucket's revision ([`Store::config_revision`]).
    ///
    /// An empty scope or key, or a key both set and unset, is [`StoreError::Invalid`].
    /// Unsetting a missing key is not an error. Values never appear in error messages.
    pub fn config_update(
        &self,
        scope: &str,
        name: Option<&str>,
        set: &BTreeMap<String, String>,
        unset: &[String],
    ) -> Result<bool, StoreError> {
        check_bucket_write(scope, set, unset)?;
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = write_bucket(&tx, scope, level(name), set, unset)?;
        tx.commit()?;
        Ok(changed)
    }

    /// The revision of one bucket level: 0 if it was never changed, bumped by every
    /// [`Store::config_update`] that changed something. It survives the bucket becoming empty.
    pub fn config_revision(&self, scope: &str, name: Option<&str>) -> Result<u64, StoreError> {
        let conn = self.lock();
        let rev: Option<i64> = conn
            .query_row(
                "SELECT revision FROM config_buckets WHERE scope = ?1 AND name = ?2",
                params![scope, level(name)],
                |r| r.get(0),
            )
            .optional()?;
        rev.map_or(Ok(0), to_u64)
    }

    /// Every bucket level that holds at least one variable, as (scope, name) with `None` for
    /// the scope level, sorted (a scope level comes before its names).
    pub fn config_buckets(&self) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare("SELECT DISTINCT scope, name FROM config ORDER BY scope, name")?;
        let rows = stmt
            .query_map([], |r| {
                let scope: String = r.get(0)?;
                let name: String = r.get(1)?;
                Ok((scope, (!name.is_empty()).then_some(name)))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    // ---------------------------------------------------------------- events

    /// Records an event and returns its id.
    ///
    /// Keeps the newest [`EVENTS_KEEP`] events, pruning older ones now and then. The level and
    /// reason are stored as [`Level::as_str`] and [`Reason::as_str`], the strings
    /// [`Event::level`] and [`Event::reason`] read back.
    pub fn record(
        &self,
        level: Level,
        resource: Option<&ResourceRef>,
        pod: Option<&str>,
        reason: Reason,
        message: &str,
    ) -> Result<i64, StoreError> {
        self.record_event(NewEvent {
            level: level.as_str(),
            resource,
            pod,
            reason: reason.as_str(),
            message,
        })
    }

    /// Records an event given as strings and returns its id. The level must be one of
    /// [`EVENT_LEVELS`]. Keeps the newest [`EVENTS_KEEP`] events, pruning older ones now and
    /// then. [`Store::record`] is the same with a typed level and reason.
    pub fn record_event(&self, ev: NewEvent<'_>) -> Result<i64, StoreError> {
        if !EVENT_LEVELS.contains(&ev.level) {
            return Err(StoreError::Invalid(format!(
                "event level `{}` is not one of info, warning, error",
                ev.level
            )));
        }
        let conn = self.lock();
        conn.execute(
            "INSERT INTO events (ts_ms, level, kind, scope, name, pod, reason, message)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                now_ms(),
                ev.level,
                ev.resource.map(|r| r.kind.as_str()),
                ev.resource.map(|r| r.scope.as_str()),
                ev.resource.map(|r| r.name.as_str()),
                ev.pod,
                ev.reason,
                ev.message,
            ],
        )?;
        let id = conn.last_insert_rowid();
        if id % 1000 == 0 {
            prune_events(&conn, EVENTS_KEEP)?;
        }
        Ok(id)
    }

    /// Deletes all but the newest `keep` events; returns how many were deleted.
    pub fn prune_events(&self, keep: usize) -> Result<usize, StoreError> {
        let conn = self.lock();
        prune_events(&conn, keep)
    }

    /// Events with id greater than `after_id`, only those about `resource` when given; at most
    /// the newest `limit` of them, returned oldest first (newest last).
    pub fn events(
        &self,
        resource: Option<&ResourceRef>,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let conn = self.lock();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = conn.prepare(
            "SELECT id, ts_ms, level, kind, scope, name, pod, reason, message FROM events
             WHERE id > ?1 AND (?2 IS NULL OR (kind = ?2 AND scope = ?3 AND name = ?4))
             ORDER BY id DESC LIMIT ?5",
        )?;
        let rows = stmt
            .query_map(
                params![
                    after_id,
                    resource.map(|r| r.kind.as_str()),
                    resource.map(|r| r.scope.as_str()),
                    resource.map(|r| r.name.as_str()),
                    limit,
                ],
                |r| {
                    Ok((
                        (
                            r.get::<_, i64>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                        ),
                        (
                            r.get::<_, Option<String>>(3)?,
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, Option<String>>(5)?,
                        ),
                        (
                            r.get::<_, Option<String>>(6)?,
                            r.get::<_, String>(7)?,
                            r.get::<_, String>(8)?,
                        ),
                    ))
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = rows
            .into_iter()
            .map(
                |((id, ts_ms, level), (kind, scope, name), (pod, reason, message))| {
                    let resource = match (kind, scope, name) {
                        (Some(k), Some(s), Some(n)) => {
                            Some(ResourceRef::new(parse_kind(&k)?, s, n))
                        }
                        _ => None,
                    };
                    Ok(Event {
                        id,
                        ts_ms,
                        level,
                        resource,
                        pod,
                        reason,
                        message,
                    })
                },
            )
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.reverse();
        Ok(out)
    }

    // ---------------------------------------------------------------- addresses

    /// This root's loopback subnet as `"127.X"`: chosen once at random with X in 16..=254,
    /// then persisted, so pods of this root live in 127.X.0.0/16.
    pub fn subnet(&self) -> Result<String, StoreError> {
        self.subnet_avoiding(&[])
    }

    /// [`Store::subnet`], choosing, when none is stored yet, one not in `taken` (the subnets
    /// other roots on this host use), while one is left.
    pub fn subnet_avoiding(&self, taken: &[String]) -> Result<String, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let subnet = subnet_in(&tx, taken)?;
        tx.commit()?;
        Ok(subnet)
    }

    /// The stable address of a pod (a key like `data-cache.0`).
    ///
    /// Returns the pod's existing allocation if it has one. Otherwise allocates the lowest
    /// `127.X.Y.Z` (Y in 0..=255, Z in 2..=254, so no `.0`, `.1` or `.255` host parts) that no
    /// other pod holds and for which `is_free(ip)` returns true, and persists it. `is_free` is
    /// called with the store locked: it must not call the store. No address left is
    /// [`StoreError::Conflict`].
    pub fn allocate_address(
        &self,
        pod: &str,
        is_free: &mut dyn FnMut(&str) -> bool,
    ) -> Result<String, StoreError> {
        if pod.is_empty() {
            return Err(StoreError::Invalid(
                "pod name for an address is empty".into(),
            ));
        }
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(ip) = address_in(&tx, pod)? {
            return Ok(ip);
        }
        let subnet = subnet_in(&tx, &[])?;
        let taken: HashSet<String> = {
            let mut stmt = tx.prepare("SELECT ip FROM addresses")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for y in 0..=255u8 {
            for z in 2..=254u8 {
                let ip = format!("{subnet}.{y}.{z}");
                if taken.contains(&ip) || !is_free(&ip) {
                    continue;
                }
                tx.execute(
                    "INSERT INTO addresses (pod, ip) VALUES (?1, ?2)",
                    params![pod, ip],
                )?;
                tx.commit()?;
                return Ok(ip);
            }
        }
        Err(StoreError::Conflict(format!(
            "no free address left in {subnet}.0.0/16 for pod `{pod}`"
        )))
    }

    /// The pod's allocated address, if any.
    pub fn address(&self, pod: &str) -> Result<Option<String>, StoreError> {
        let conn = self.lock();
        address_in(&conn, pod)
    }

    /// Every allocation, pod -> address.
    pub fn addresses(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT pod, ip FROM addresses")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Frees the pod's address (no error if it had none); it may be handed to another pod.
    pub fn release_address(&self, pod: &str) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute("DELETE FROM addresses WHERE pod = ?1", params![pod])?;
        Ok(())
    }

    // ---------------------------------------------------------------- observed status

    /// Stores (replacing) the last observed status of a pod and the resource that owns it.
    pub fn put_pod_status(
        &self,
        pod: &str,
        owner: &ResourceRef,
        status: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let status = serde_json::to_string(status)?;
        let conn = self.lock();
        conn.execute(
            "INSERT OR REPLACE INTO pod_status (pod, kind, scope, name, status, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                pod,
                owner.kind.as_str(),
                owner.scope,
                owner.name,
                status,
                now_ms()
            ],
        )?;
        Ok(())
    }

    /// Every stored pod status as (pod, owner, status), ordered by pod.
    pub fn pod_statuses(
        &self,
    ) -> Result<Vec<(String, ResourceRef, serde_json::Value)>, StoreError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare("SELECT pod, kind, scope, name, status FROM pod_status ORDER BY pod")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(pod, kind, scope, name, status)| {
                let owner = ResourceRef::new(parse_kind(&kind)?, scope, name);
                Ok((pod, owner, serde_json::from_str(&status)?))
            })
            .collect()
    }

    /// Forgets a pod's status (no error if there was none).
    pub fn delete_pod_status(&self, pod: &str) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute("DELETE FROM pod_status WHERE pod = ?1", params![pod])?;
        Ok(())
    }

    // ---------------------------------------------------------------- meta

    /// The value of a key of the `meta` table, if set.
    pub fn meta(&self, key: &MetaKey) -> Result<Option<String>, StoreError> {
        self.meta_get(&key.key())
    }

    /// Sets (replacing) the value of a key of the `meta` table.
    pub fn set_meta(&self, key: &MetaKey, value: &str) -> Result<(), StoreError> {
        self.meta_set(&key.key(), value)
    }

    /// Removes a key of the `meta` table (no error if it is not set).
    pub fn delete_meta(&self, key: &MetaKey) -> Result<(), StoreError> {
        self.meta_delete(&key.key())
    }

    /// The value of a key holding JSON, decoded; `None` if the key is not set. A value that
    /// does not decode as `T` is [`StoreError::CorruptMeta`] naming the key.
    pub fn meta_json<T: DeserializeOwned>(&self, key: &MetaKey) -> Result<Option<T>, StoreError> {
        self.meta(key)?
            .map(|text| {
                serde_json::from_str(&text).map_err(|e| StoreError::CorruptMeta {
                    key: key.clone(),
                    message: format!("bad JSON: {e}"),
                })
            })
            .transpose()
    }

    /// Sets (replacing) a key to `value` as JSON. A value that does not serialize (a map with
    /// non-string keys, a failing `Serialize` impl) is [`StoreError::Invalid`] naming the
    /// key, and nothing is written.
    pub fn set_meta_json<T: Serialize + ?Sized>(
        &self,
        key: &MetaKey,
        value: &T,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(value).map_err(|e| {
            StoreError::Invalid(format!("the value for meta key `{key}` is not JSON: {e}"))
        })?;
        self.set_meta(key, &text)
    }

    /// The value of a key parsed with [`FromStr`] (a number such as a failover epoch, or a
    /// word such as a [`HaState`]); `None` if the key is not set. A value that does not parse
    /// is [`StoreError::CorruptMeta`] naming the key.
    pub fn meta_parsed<T>(&self, key: &MetaKey) -> Result<Option<T>, StoreError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.meta(key)?
            .map(|text| {
                text.parse().map_err(|e: T::Err| StoreError::CorruptMeta {
                    key: key.clone(),
                    message: format!("`{text}`: {e}"),
                })
            })
            .transpose()
    }

    // The raw, string-keyed accessors: every caller outside this crate names a MetaKey.

    /// A value of the `meta` table by its raw key; [`Store::meta`] takes a [`MetaKey`].
    pub(crate) fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let conn = self.lock();
        Ok(conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Sets a value of the `meta` table by its raw key; [`Store::set_meta`] takes a
    /// [`MetaKey`].
    pub(crate) fn meta_set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
        Ok(())
    }

    /// Removes a key of the `meta` table by its raw key; [`Store::delete_meta`] takes a
    /// [`MetaKey`].
    pub(crate) fn meta_delete(&self, key: &str) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute("DELETE FROM meta WHERE key = ?1", params![key])?;
        Ok(())
    }
}

// -------------------------------------------------------------------- helpers

/// Sets mode 0600 on a file.
fn restrict(path: &Path) -> Result<(), StoreError> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    Ok(())
}

/// Brings the schema up to the newest version, in one transaction.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len();
    let current = usize::try_from(version).map_err(|_| {
        StoreError::Invalid(format!(
            "{}: negative schema version {version}",
            path.display()
        ))
    })?;
    if current > known {
        return Err(StoreError::Invalid(format!(
            "{}: schema version {current} is newer than this vd understands ({known}); upgrade vd",
            path.display()
        )));
    }
    for sql in &MIGRATIONS[current..] {
        tx.execute_batch(sql)?;
    }
    if current < known {
        tx.pragma_update(None, "user_version", known as i64)?;
    }
    tx.commit()?;
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn to_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Invalid(format!("negative revision {v} in the store")))
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Invalid(format!("revision {v} is out of range")))
}

fn parse_kind(s: &str) -> Result<Kind, StoreError> {
    Kind::parse(s).ok_or_else(|| StoreError::Invalid(format!("unknown kind `{s}` in the store")))
}

fn parse_spec(id: &ResourceRef, json: &str) -> Result<Spec, StoreError> {
    serde_json::from_str(json).map_err(|e| {
        StoreError::Invalid(format!(
            "stored spec of {id} does not match this vd's model: {e}"
        ))
    })
}

fn kind_rank(k: Kind) -> usize {
    Kind::ALL
        .iter()
        .position(|x| *x == k)
        .unwrap_or(Kind::ALL.len())
}

/// The stored level name for a bucket: `""` is the scope level.
fn level(name: Option<&str>) -> &str {
    name.unwrap_or("")
}

fn check_unique(resources: &[Resource]) -> Result<(), StoreError> {
    let mut seen = HashSet::new();
    for r in resources {
        if !seen.insert(&r.id) {
            return Err(StoreError::Invalid(format!(
                "{} appears more than once",
                r.id
            )));
        }
    }
    Ok(())
}

/// What applying `r` would do given the current contents, and the revision it would end at.
fn decide(conn: &Connection, r: &Resource) -> Result<(ChangeKind, u64), StoreError> {
    let row: Option<(String, i64)> = conn
        .query_row(
            "SELECT spec, revision FROM resources WHERE kind = ?1 AND scope = ?2 AND name = ?3",
            params![r.id.kind.as_str(), r.id.scope, r.id.name],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let Some((stored, rev)) = row else {
        return Ok((ChangeKind::Created, 1));
    };
    let rev = to_u64(rev)?;
    // Normalize the stored spec through the current model so fields added since it was written
    // (with their defaults) don't count as a change; if it no longer parses, it differs.
    let old = match serde_json::from_str::<Spec>(&stored) {
        Ok(spec) => serde_json::to_value(spec)?,
        Err(_) => {
            serde_json::from_str::<serde_json::Value>(&stored).unwrap_or(serde_json::Value::Null)
        }
    };
    if old == serde_json::to_value(&r.spec)? {
        Ok((ChangeKind::Unchanged, rev))
    } else {
        Ok((ChangeKind::Changed, rev + 1))
    }
}

fn read_bucket(
    conn: &Connection,
    scope: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, StoreError> {
    let mut stmt = conn.prepare("SELECT key, value FROM config WHERE scope = ?1 AND name = ?2")?;
    let rows = stmt.query_map(params![scope, name], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn prune_events(conn: &Connection, keep: usize) -> Result<usize, StoreError> {
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    let n = conn.execute(
        "DELETE FROM events WHERE id NOT IN (SELECT id FROM events ORDER BY id DESC LIMIT ?1)",
        params![keep],
    )?;
    Ok(n)
}

fn address_in(conn: &Connection, pod: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT ip FROM addresses WHERE pod = ?1",
            params![pod],
            |r| r.get(0),
        )
        .optional()?)
}

/// Reads the persisted subnet, choosing and persisting one if there is none yet.
fn subnet_in(conn: &Connection, taken: &[String]) -> Result<String, StoreError> {
    let stored: Option<String> = conn
        .query_row("SELECT value FROM settings WHERE key = 'subnet'", [], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(s) = stored {
        let ok = s
            .strip_prefix("127.")
            .and_then(|x| x.parse::<u8>().ok())
            .is_some_and(|x| (16..=254).contains(&x) && s == format!("127.{x}"));
        if !ok {
            return Err(StoreError::Invalid(format!(
                "stored subnet `{s}` is not 127.X with X in 16..=254"
            )));
        }
        return Ok(s);
    }
    // A random start spreads roots over 127/8; from there the first subnet no other root uses.
    let start = random_octet();
    let s = (0..239u16)
        .map(|i| format!("127.{}", 16 + (u16::from(start) - 16 + i) % 239))
        .find(|s| !taken.contains(s))
        .unwrap_or_else(|| format!("127.{start}"));
    conn.execute(
        "INSERT INTO settings (key, value) VALUES ('subnet', ?1)",
        params![s],
    )?;
    Ok(s)
}

/// A random number in 16..=254, from the std hasher's per-process random keys mixed with the
/// time and pid (no need for a CSPRNG: this only spreads roots over 127/8).
fn random_octet() -> u8 {
    use std::hash::BuildHasher;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let h = std::collections::hash_map::RandomState::new().hash_one((nanos, std::process::id()));
    16 + (h % 239) as u8
}
