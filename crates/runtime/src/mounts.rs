//! Planning a pod's private root: which binds, tmpfs mounts and mount points make the pod's
//! container paths real without creating anything on the host outside the vd root.
//!
//! The plan is pure: it asks a [`HostFs`] what exists and returns ordered [`MountOp`]s that
//! `init` executes inside the pod's mount namespace. Host system directories are bound
//! read-only onto a tmpfs root. When a pod mount targets a path that does not exist under a
//! read-only bind (say `/usr/local/bin/entrypoint`), the deepest existing directory is
//! "exploded": a tmpfs goes over it and each of its host entries is bound back, so the missing
//! entry can be created in memory instead of on the host.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// What a path is on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    /// A directory.
    Dir,
    /// Anything that is not a directory or a symlink.
    File,
    /// A symbolic link (not followed).
    Symlink,
}

/// Read-only questions the planner asks about the host's filesystem.
pub trait HostFs {
    /// The kind of `p`, not following a final symlink; `None` if it does not exist.
    fn kind(&self, p: &Path) -> Option<FileKind>;
    /// Entries of directory `p` with their kinds.
    fn list(&self, p: &Path) -> Vec<(String, FileKind)>;
    /// The target of symlink `p`.
    fn read_link(&self, p: &Path) -> Option<PathBuf>;
}

/// The real host filesystem.
pub struct RealFs;

impl HostFs for RealFs {
    fn kind(&self, p: &Path) -> Option<FileKind> {
        let m = std::fs::symlink_metadata(p).ok()?;
        Some(if m.file_type().is_symlink() {
            FileKind::Symlink
        } else if m.is_dir() {
            FileKind::Dir
        } else {
            FileKind::File
        })
    }
    fn list(&self, p: &Path) -> Vec<(String, FileKind)> {
        let Ok(rd) = std::fs::read_dir(p) else {
            return Vec::new();
        };
        let mut out: Vec<(String, FileKind)> = rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let kind = self.kind(&e.path())?;
                Some((name, kind))
            })
            .collect();
        out.sort();
        out
    }
    fn read_link(&self, p: &Path) -> Option<PathBuf> {
        std::fs::read_link(p).ok()
    }
}

/// One step of building the pod's root; paths are inside the pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountOp {
    /// Mount an empty tmpfs at an existing directory.
    Tmpfs {
        /// Where.
        target: PathBuf,
    },
    /// Create a directory (inside a tmpfs).
    Mkdir {
        /// Which.
        path: PathBuf,
    },
    /// Create an empty file to bind a file over (inside a tmpfs).
    Touch {
        /// Which.
        path: PathBuf,
    },
    /// Create a symlink (inside a tmpfs).
    Symlink {
        /// What it points to.
        to: PathBuf,
        /// Where it is created.
        path: PathBuf,
    },
    /// Bind a host path over an existing pod path.
    Bind {
        /// Host path.
        source: PathBuf,
        /// Pod path.
        target: PathBuf,
        /// Remount read-only.
        read_only: bool,
    },
}

/// A mount the pod asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodMount {
    /// Host path (a volume directory, an asset file, the hosts file).
    pub source: PathBuf,
    /// Absolute path inside the pod.
    pub target: PathBuf,
    /// Read-only.
    pub read_only: bool,
}

/// Why a root could not be planned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// The mount target is not an absolute, normal path.
    #[error("mount target `{}` must be an absolute path without `..`", .0.display())]
    BadTarget(PathBuf),
    /// The source does not exist on the host.
    #[error("mount source `{}` does not exist", .0.display())]
    MissingSource(PathBuf),
    /// A file would be mounted over a directory or the other way round.
    #[error("cannot mount {source_kind} `{}` over {target_kind} `{}` inside the pod", from.display(), target.display())]
    KindMismatch {
        /// Host path.
        from: PathBuf,
        /// What it is.
        source_kind: &'static str,
        /// Pod path.
        target: PathBuf,
        /// What that is.
        target_kind: &'static str,
    },
    /// Something that is not a directory stands where a directory must be.
    #[error("`{}` inside the pod is not a directory, so nothing can be mounted below it", .0.display())]
    NotADirectory(PathBuf),
}

/// Top-level host entries that get a fresh mount instead of a read-only bind.
const SPECIAL: [&str; 6] = ["proc", "sys", "dev", "tmp", "run", "lost+found"];

/// What backs a pod path: a host path (bound read-only or read-write) or memory.
#[derive(Debug, Clone)]
enum Backing {
    Host { source: PathBuf, writable: bool },
    Memory,
}

struct View<'a> {
    fs: &'a dyn HostFs,
    /// Mounted pod paths and what backs them, later entries shadow earlier ones.
    layers: Vec<(PathBuf, Backing)>,
    /// Entries created in memory (tmpfs) with their kinds.
    created: BTreeSet<(PathBuf, bool)>,
    ops: Vec<MountOp>,
    /// Pod mounts made so far (source, target, read-only): an explosion above one of them
    /// must put it back.
    pod_binds: Vec<(PathBuf, PathBuf, bool)>,
}

impl View<'_> {
    fn covering(&self, p: &Path) -> (&Path, &Backing) {
        self.layers
            .iter()
            .rev()
            .find(|(at, _)| p.starts_with(at))
            .map(|(at, b)| (at.as_path(), b))
            .unwrap_or((Path::new("/"), &Backing::Memory))
    }

    fn kind(&self, p: &Path) -> Option<FileKind> {
        let (at, backing) = self.covering(p);
        match backing {
            Backing::Memory => {
                if p == at {
                    return Some(FileKind::Dir);
                }
                if self.created.contains(&(p.to_path_buf(), true)) {
                    Some(FileKind::Dir)
                } else if self.created.contains(&(p.to_path_buf(), false)) {
                    Some(FileKind::File)
                } else {
                    None
                }
            }
            Backing::Host { source, .. } => {
                let rest = p.strip_prefix(at).unwrap_or(Path::new(""));
                if rest.as_os_str().is_empty() {
                    // The mount point itself (no join: `join("")` adds a trailing slash, which
                    // fails on a file): a bind of a file is a file.
                    return self.fs.kind(source).map(|k| {
                        if k == FileKind::Symlink {
                            FileKind::File
                        } else {
                            k
                        }
                    });
                }
                self.fs.kind(&source.join(rest))
            }
        }
    }

    fn host_path(&self, p: &Path) -> Option<PathBuf> {
        match self.covering(p) {
            (at, Backing::Host { source, .. }) => match p.strip_prefix(at) {
                Ok(rest) if !rest.as_os_str().is_empty() => Some(source.join(rest)),
                _ => Some(source.clone()),
            },
            _ => None,
        }
    }

    fn can_create_in(&self, dir: &Path) -> bool {
        matches!(
            self.covering(dir).1,
            Backing::Memory | Backing::Host { writable: true, .. }
        )
    }

    fn create(&mut self, p: &Path, dir: bool) {
        if let Backing::Memory = self.covering(p).1 {
            self.created.insert((p.to_path_buf(), dir));
        }
        self.ops.push(if dir {
            MountOp::Mkdir { path: p.into() }
        } else {
            MountOp::Touch { path: p.into() }
        });
    }

    fn bind(&mut self, source: &Path, target: &Path, read_only: bool) {
        self.ops.push(MountOp::Bind {
            source: source.into(),
            target: target.into(),
            read_only,
        });
        self.layers.push((
            target.into(),
            Backing::Host {
                source: source.into(),
                writable: !read_only,
            },
        ));
    }

    fn tmpfs(&mut self, target: &Path) {
        // What was created below `target` before is hidden by the new tmpfs: it must be
        // created again to exist.
        self.created
            .retain(|(p, _)| !p.starts_with(target) || p == target);
        self.ops.push(MountOp::Tmpfs {
            target: target.into(),
        });
        self.layers.push((target.into(), Backing::Memory));
    }

    /// Replaces a read-only bound directory by a tmpfs holding binds of each of its entries.
    fn explode(&mut self, dir: &Path) {
        let Some(host) = self.host_path(dir) else {
            return;
        };
        let entries = self.fs.list(&host);
        self.tmpfs(dir);
        for (name, kind) in entries {
            let src = host.join(&name);
            let dst = dir.join(&name);
            match kind {
                FileKind::Symlink => {
                    if let Some(to) = self.fs.read_link(&src) {
                        self.created.insert((dst.clone(), false));
                        self.ops.push(MountOp::Symlink { to, path: dst });
                    }
                }
                FileKind::Dir => {
                    self.create(&dst, true);
                    self.bind(&src, &dst, true);
                }
                FileKind::File => {
                    self.create(&dst, false);
                    self.bind(&src, &dst, true);
                }
            }
        }
        // The tmpfs hid any pod mount made below `dir` (say a file bound over
        // /etc/redis/redis.conf before /etc/redis had to be exploded for conf.d): redo them.
        let below: Vec<(PathBuf, PathBuf, bool)> = self
            .pod_binds
            .iter()
            .filter(|(_, t, _)| t.starts_with(dir) && t != dir)
            .cloned()
            .collect();
        // A mount point may need its own parent exploded again: the tmpfs over `dir` bound its
        // host subdirectories back read-only, hiding one exploded before (a bind at
        // /etc/redis/tls, made in an exploded /etc/redis, when /etc is exploded for
        // /etc/sentinel). Exploding that parent redoes every pod mount below it.
        let mut redone: Vec<PathBuf> = Vec::new();
        for (source, target, ro) in below {
            if redone.iter().any(|d| target.starts_with(d)) {
                continue;
            }
            if self.kind(&target).is_none() {
                let parent = target.parent().unwrap_or(Path::new("/")).to_path_buf();
                if self.ensure_dir(&parent).is_err() {
                    continue;
                }
                if !self.can_create_in(&parent) {
                    self.explode(&parent);
                    redone.push(parent);
                    continue;
                }
                let is_dir = self.fs.kind(&source) == Some(FileKind::Dir);
                self.create(&target, is_dir);
            }
            self.bind(&source, &target, ro);
        }
    }

    /// Makes `dir` exist as a directory in the pod, creating what is missing.
    fn ensure_dir(&mut self, dir: &Path) -> Result<(), PlanError> {
        match self.kind(dir) {
            Some(FileKind::Dir) => return Ok(()),
            Some(_) => return Err(PlanError::NotADirectory(dir.into())),
            None => {}
        }
        let parent = dir.parent().unwrap_or(Path::new("/"));
        self.ensure_dir(parent)?;
        if !self.can_create_in(parent) {
            self.explode(parent);
        }
        self.create(dir, true);
        Ok(())
    }
}

fn normal_abs(p: &Path) -> bool {
    p.is_absolute()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
}

fn kind_name(k: FileKind) -> &'static str {
    match k {
        FileKind::Dir => "directory",
        _ => "file",
    }
}

/// Plans the pod root: host system directories read-only, fresh `/tmp` and `/run`, host
/// `/dev`, `/proc` and `/sys`, `hide` masked by an empty tmpfs (the vd root, so pods don't see
/// each other's volumes), then `mounts` in order of depth.
pub fn plan_root(
    fs: &dyn HostFs,
    mounts: &[PodMount],
    hide: &[PathBuf],
) -> Result<Vec<MountOp>, PlanError> {
    let mut v = View {
        fs,
        layers: Vec::new(),
        created: BTreeSet::new(),
        ops: Vec::new(),
        pod_binds: Vec::new(),
    };
    for (name, kind) in fs.list(Path::new("/")) {
        let host = Path::new("/").join(&name);
        if SPECIAL.contains(&name.as_str()) {
            continue;
        }
        match kind {
            FileKind::Symlink => {
                if let Some(to) = fs.read_link(&host) {
                    v.created.insert((host.clone(), false));
                    v.ops.push(MountOp::Symlink { to, path: host });
                }
            }
            FileKind::Dir => {
                v.create(&host, true);
                v.bind(&host, &host, true);
            }
            FileKind::File => {
                v.create(&host, false);
                v.bind(&host, &host, true);
            }
        }
    }
    for special in ["dev", "proc", "sys"] {
        let p = Path::new("/").join(special);
        if fs.kind(&p) == Some(FileKind::Dir) {
            v.create(&p, true);
            v.bind(&p, &p, special == "sys");
        }
    }
    for mem in ["/tmp", "/run"] {
        v.create(Path::new(mem), true);
        v.tmpfs(Path::new(mem));
    }
    for h in hide {
        if normal_abs(h)
            && v.kind(h) == Some(FileKind::Dir)
            && !matches!(v.covering(h).1, Backing::Memory)
        {
            v.tmpfs(h);
        }
    }
    let mut ordered: Vec<&PodMount> = mounts.iter().collect();
    ordered.sort_by_key(|m| m.target.components().count());
    for m in ordered {
        if !normal_abs(&m.target) || m.target == Path::new("/") {
            return Err(PlanError::BadTarget(m.target.clone()));
        }
        let src_kind = match fs.kind(&m.source) {
            Some(FileKind::Symlink) | Some(FileKind::File) => FileKind::File,
            Some(FileKind::Dir) => FileKind::Dir,
            None => return Err(PlanError::MissingSource(m.source.clone())),
        };
        let parent = m.target.parent().unwrap_or(Path::new("/"));
        v.ensure_dir(parent)?;
        match v.kind(&m.target) {
            Some(k) => {
                let k = if k == FileKind::Symlink {
                    FileKind::File
                } else {
                    k
                };
                if k != src_kind {
                    return Err(PlanError::KindMismatch {
                        from: m.source.clone(),
                        source_kind: kind_name(src_kind),
                        target: m.target.clone(),
                        target_kind: kind_name(k),
                    });
                }
            }
            None => {
                if !v.can_create_in(parent) {
                    v.explode(parent);
                }
                v.create(&m.target, src_kind == FileKind::Dir);
            }
        }
        v.bind(&m.source, &m.target, m.read_only);
        v.pod_binds
            .push((m.source.clone(), m.target.clone(), m.read_only));
    }
    Ok(v.ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A host described by a map of path -> kind.
    struct FakeFs(BTreeMap<PathBuf, FileKind>);

    impl FakeFs {
        fn new(entries: &[(&str, FileKind)]) -> Self {
            Self(
                entries
                    .iter()
                    .map(|(p, k)| (PathBuf::from(p), *k))
                    .collect(),
            )
        }
    }

    impl HostFs for FakeFs {
        fn kind(&self, p: &Path) -> Option<FileKind> {
            if p == Path::new("/") {
                return Some(FileKind::Dir);
            }
            let k = self.0.get(p).copied();
            // Like the kernel: `file/` is not a file.
            if p.as_os_str().to_string_lossy().ends_with('/') && k != Some(FileKind::Dir) {
                return None;
            }
            k
        }
        fn list(&self, p: &Path) -> Vec<(String, FileKind)> {
            self.0
                .iter()
                .filter(|(q, _)| q.parent() == Some(p))
                .map(|(q, k)| {
                    (
                        q.file_name()
                            .unwrap_or_default()
                            .to_string_lossy()
                            .into_owned(),
                        *k,
                    )
                })
                .collect()
        }
        fn read_link(&self, p: &Path) -> Option<PathBuf> {
            (self.kind(p) == Some(FileKind::Symlink)).then(|| PathBuf::from("usr/bin"))
        }
    }

    use FileKind::*;

    fn host() -> FakeFs {
        FakeFs::new(&[
            ("/bin", Symlink),
            ("/usr", Dir),
            ("/usr/bin", Dir),
            ("/usr/local", Dir),
            ("/usr/local/bin", Dir),
            ("/usr/local/bin/tool", File),
            ("/etc", Dir),
            ("/etc/hosts", File),
            ("/proc", Dir),
            ("/dev", Dir),
            ("/tmp", Dir),
            ("/var", Dir),
            ("/var/lib", Dir),
            ("/var/lib/vd", Dir),
            ("/var/lib/vd/volumes/v0", Dir),
            ("/var/lib/vd/assets/entry", File),
            ("/var/lib/vd/run/hosts", File),
        ])
    }

    fn m(src: &str, dst: &str, ro: bool) -> PodMount {
        PodMount {
            source: src.into(),
            target: dst.into(),
            read_only: ro,
        }
    }

    #[test]
    fn binds_system_dirs_read_only_and_keeps_symlinks() {
        let ops = plan_root(&host(), &[], &[]).unwrap();
        assert!(ops.contains(&MountOp::Symlink {
            to: "usr/bin".into(),
            path: "/bin".into()
        }));
        assert!(ops.contains(&MountOp::Bind {
            source: "/usr".into(),
            target: "/usr".into(),
            read_only: true
        }));
        assert!(ops.contains(&MountOp::Tmpfs {
            target: "/tmp".into()
        }));
        assert!(ops.contains(&MountOp::Bind {
            source: "/dev".into(),
            target: "/dev".into(),
            read_only: false
        }));
        assert!(!ops
            .iter()
            .any(|o| matches!(o, MountOp::Bind { source, .. } if source == Path::new("/tmp"))));
    }

    #[test]
    fn new_directory_at_top_level_is_created_in_memory() {
        let ops = plan_root(&host(), &[m("/var/lib/vd/volumes/v0", "/data", false)], &[]).unwrap();
        let n = ops.len();
        assert_eq!(
            ops[n - 2],
            MountOp::Mkdir {
                path: "/data".into()
            }
        );
        assert_eq!(
            ops[n - 1],
            MountOp::Bind {
                source: "/var/lib/vd/volumes/v0".into(),
                target: "/data".into(),
                read_only: false
            }
        );
    }

    /// Replays `ops` and fails if one creates an entry anywhere but in memory or a writable
    /// bind, as the mount layers stand at that moment.
    fn assert_nothing_on_host(ops: &[MountOp]) {
        // (target, writable): a tmpfs is writable memory; the root is a tmpfs.
        let mut layers: Vec<(PathBuf, bool)> = vec![("/".into(), true)];
        for op in ops {
            match op {
                MountOp::Tmpfs { target } => layers.push((target.clone(), true)),
                MountOp::Bind {
                    target, read_only, ..
                } => layers.push((target.clone(), !read_only)),
                MountOp::Mkdir { path } | MountOp::Touch { path } => {
                    let parent = path.parent().unwrap_or(Path::new("/"));
                    let writable = layers
                        .iter()
                        .rev()
                        .find(|(at, _)| parent.starts_with(at))
                        .is_some_and(|(_, w)| *w);
                    assert!(writable, "{path:?} would be created on the host: {ops:#?}");
                }
                _ => {}
            }
        }
    }

    #[test]
    fn a_mount_point_hidden_by_a_later_explosion_is_made_again_in_memory() {
        // /etc/redis exists on the host (a redis package); the pod mounts a directory in it and
        // a file in /etc/sentinel, which does not exist, so /etc is exploded after /etc/redis.
        let mut fs = host();
        fs.0.insert("/etc/redis".into(), Dir);
        fs.0.insert("/etc/redis/redis.conf".into(), File);
        fs.0.insert("/var/lib/vd/tls".into(), Dir);
        let ops = plan_root(
            &fs,
            &[
                m("/var/lib/vd/tls", "/etc/redis/tls", true),
                m(
                    "/var/lib/vd/assets/entry",
                    "/etc/sentinel/conf.d/o.conf",
                    true,
                ),
            ],
            &[],
        )
        .unwrap();
        assert_nothing_on_host(&ops);
        // Both pod mounts are the last word at their targets.
        for (source, target) in [
            ("/var/lib/vd/tls", "/etc/redis/tls"),
            ("/var/lib/vd/assets/entry", "/etc/sentinel/conf.d/o.conf"),
        ] {
            let last = ops
                .iter()
                .rposition(|o| matches!(o, MountOp::Bind { target: t, .. } | MountOp::Tmpfs { target: t } if Path::new(target).starts_with(t)))
                .unwrap();
            assert_eq!(
                ops[last],
                MountOp::Bind {
                    source: source.into(),
                    target: target.into(),
                    read_only: true
                },
                "{ops:#?}"
            );
        }
        // The mount point is made in the last tmpfs over /etc/redis, before the bind.
        let last_tmpfs = ops
            .iter()
            .rposition(|o| {
                *o == MountOp::Tmpfs {
                    target: "/etc/redis".into(),
                }
            })
            .unwrap();
        assert!(
            ops[last_tmpfs..].contains(&MountOp::Mkdir {
                path: "/etc/redis/tls".into()
            }),
            "{ops:#?}"
        );
        // The host's file in /etc/redis is still there.
        assert!(ops.contains(&MountOp::Bind {
            source: "/etc/redis/redis.conf".into(),
            target: "/etc/redis/redis.conf".into(),
            read_only: true
        }));
    }

    #[test]
    fn missing_file_under_read_only_dir_explodes_the_parent() {
        let ops = plan_root(
            &host(),
            &[m(
                "/var/lib/vd/assets/entry",
                "/usr/local/bin/voodu-redis-entrypoint",
                true,
            )],
            &[],
        )
        .unwrap();
        let tail: Vec<&MountOp> = ops.iter().rev().take(5).collect();
        // The parent became a tmpfs with the host's entry bound back, then the new file.
        assert!(ops.contains(&MountOp::Tmpfs {
            target: "/usr/local/bin".into()
        }));
        assert!(ops.contains(&MountOp::Bind {
            source: "/usr/local/bin/tool".into(),
            target: "/usr/local/bin/tool".into(),
            read_only: true
        }));
        assert_eq!(
            *tail[1],
            MountOp::Touch {
                path: "/usr/local/bin/voodu-redis-entrypoint".into()
            }
        );
        // Nothing is created on the host: every Mkdir/Touch lies inside a tmpfs.
        for op in &ops {
            if let MountOp::Mkdir { path } | MountOp::Touch { path } = op {
                let under_tmpfs = ops.iter().any(|o| matches!(o, MountOp::Tmpfs { target } if path.starts_with(target) && path != target));
                let top_level = path.parent() == Some(Path::new("/"));
                assert!(
                    under_tmpfs || top_level,
                    "{path:?} would be created on the host"
                );
            }
        }
    }

    #[test]
    fn deep_missing_chain_explodes_only_the_deepest_existing_dir() {
        let ops = plan_root(
            &host(),
            &[m(
                "/var/lib/vd/assets/entry",
                "/etc/redis/conf.d/users.conf",
                true,
            )],
            &[],
        )
        .unwrap();
        assert!(ops.contains(&MountOp::Tmpfs {
            target: "/etc".into()
        }));
        assert!(ops.contains(&MountOp::Mkdir {
            path: "/etc/redis".into()
        }));
        assert!(ops.contains(&MountOp::Mkdir {
            path: "/etc/redis/conf.d".into()
        }));
        assert!(!ops.contains(&MountOp::Tmpfs {
            target: "/etc/redis".into()
        }));
    }

    #[test]
    fn existing_file_is_bound_over_and_vd_root_hidden() {
        let ops = plan_root(
            &host(),
            &[m("/var/lib/vd/run/hosts", "/etc/hosts", true)],
            &[PathBuf::from("/var/lib/vd")],
        )
        .unwrap();
        assert!(ops.contains(&MountOp::Tmpfs {
            target: "/var/lib/vd".into()
        }));
        assert_eq!(
            ops.last(),
            Some(&MountOp::Bind {
                source: "/var/lib/vd/run/hosts".into(),
                target: "/etc/hosts".into(),
                read_only: true
            })
        );
        assert!(!ops.contains(&MountOp::Tmpfs {
            target: "/etc".into()
        }));
    }

    #[test]
    fn nested_mounts_inside_a_volume_use_the_volume() {
        let ops = plan_root(
            &host(),
            &[
                m("/var/lib/vd/volumes/v0", "/data", false),
                m("/var/lib/vd/assets/entry", "/data/conf/x.conf", true),
            ],
            &[],
        )
        .unwrap();
        // /data is a writable volume, so /data/conf is created in it rather than exploding it.
        assert!(ops.contains(&MountOp::Mkdir {
            path: "/data/conf".into()
        }));
        assert!(!ops.contains(&MountOp::Tmpfs {
            target: "/data".into()
        }));
    }

    #[test]
    fn exploding_a_parent_keeps_earlier_pod_mounts() {
        let mut fs = host();
        fs.0.insert("/etc/redis".into(), Dir);
        fs.0.insert("/etc/redis/redis.conf".into(), File);
        let ops = plan_root(
            &fs,
            &[
                m("/var/lib/vd/assets/entry", "/etc/redis/redis.conf", true),
                m(
                    "/var/lib/vd/run/hosts",
                    "/etc/redis/conf.d/users.conf",
                    true,
                ),
            ],
            &[],
        )
        .unwrap();
        let explode = ops
            .iter()
            .position(|o| {
                *o == MountOp::Tmpfs {
                    target: "/etc/redis".into(),
                }
            })
            .unwrap();
        let ours = MountOp::Bind {
            source: "/var/lib/vd/assets/entry".into(),
            target: "/etc/redis/redis.conf".into(),
            read_only: true,
        };
        let last_ours = ops.iter().rposition(|o| *o == ours).unwrap();
        let last_host = ops
            .iter()
            .rposition(|o| matches!(o, MountOp::Bind { source, target, .. } if source == Path::new("/etc/redis/redis.conf") && target == Path::new("/etc/redis/redis.conf")))
            .unwrap();
        assert!(
            last_ours > explode && last_ours > last_host,
            "our redis.conf is on top after the explosion: {ops:#?}"
        );
        // No mount point is created twice (a second Touch would write through a read-only bind).
        let touches = ops
            .iter()
            .filter(|o| {
                **o == MountOp::Touch {
                    path: "/etc/redis/redis.conf".into(),
                }
            })
            .count();
        assert_eq!(touches, 1, "{ops:#?}");
    }

    #[test]
    fn rejects_bad_targets_and_kind_mismatch() {
        assert!(matches!(
            plan_root(&host(), &[m("/usr", "rel", true)], &[]),
            Err(PlanError::BadTarget(_))
        ));
        assert!(matches!(
            plan_root(&host(), &[m("/usr", "/a/../b", true)], &[]),
            Err(PlanError::BadTarget(_))
        ));
        assert!(matches!(
            plan_root(
                &host(),
                &[m("/var/lib/vd/volumes/v0", "/etc/hosts", true)],
                &[]
            ),
            Err(PlanError::KindMismatch { .. })
        ));
        assert!(matches!(
            plan_root(&host(), &[m("/nope", "/x", true)], &[]),
            Err(PlanError::MissingSource(_))
        ));
    }
}
