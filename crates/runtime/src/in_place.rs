//! Rewriting a file that running pods have bind-mounted (their `/etc/hosts`): the mount holds
//! the file's inode, so a new file renamed over it would go unseen and the content has to be
//! replaced in place, while pods may be reading it.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

/// Replaces `path`'s content with `bytes`, keeping its inode, so that a reader never sees an
/// empty or cut-short file. A plain `fs::write` truncates first: a pod resolving a name in
/// that window finds no entry at all (redis-sentinel then records a master it cannot reach).
/// Here the new bytes go over the old from the start in one write, padded with blank lines to
/// the old length when shorter (a reader meanwhile sees the new list, then empty lines), and
/// the file is cut to the new length only after.
pub fn overwrite(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    let old = f.metadata()?.len();
    let new = bytes.len() as u64;
    let mut buf = bytes.to_vec();
    if old > new {
        buf.resize(old as usize, b'\n');
    }
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&buf)?;
    if old > new {
        f.set_len(new)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longer_and_shorter_contents_replace_the_old_in_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hosts");
        std::fs::write(&p, "10.0.0.1 a\n").unwrap();
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        let before = inode(&p);
        overwrite(&p, b"10.0.0.2 b\n10.0.0.3 c\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "10.0.0.2 b\n10.0.0.3 c\n"
        );
        overwrite(&p, b"10.0.0.4 d\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "10.0.0.4 d\n");
        overwrite(&p, b"").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "");
        assert_eq!(
            inode(&p),
            before,
            "the same file: bind mounts keep seeing it"
        );
    }

    /// A reader racing the rewrites never finds the file empty nor without the line every
    /// version has first (what a name lookup during a rewrite needs).
    #[test]
    fn a_concurrent_reader_always_finds_the_entry() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hosts");
        let head = "127.0.0.1 localhost\n10.0.0.9 master\n";
        std::fs::write(&p, head).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let p = p.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let text = std::fs::read_to_string(&p).unwrap();
                    assert!(text.starts_with(head), "a reader saw {text:?}");
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..5000 {
            let tail: String = (0..(i % 40))
                .map(|k| format!("10.1.{k}.{i} pod-{k}\n"))
                .collect();
            overwrite(&p, format!("{head}{tail}").as_bytes()).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    }
}
