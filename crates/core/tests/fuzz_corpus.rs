//! Replays the fuzz corpora of the parsers in this crate: `fuzz/corpus/schedule` (cron
//! schedules), `fuzz/corpus/duration` (duration strings) and, through `CLUSTER NODES` parsing, `fuzz/corpus/redis_text`; with the checks
//! the fuzz targets make, so an input that once crashed a parser stays a test.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use vd_core::schedule::{due, Schedule};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "{} is empty", dir.display());
    out
}

#[test]
fn schedule_corpus() {
    let mut parsed = 0;
    for (path, data) in corpus("schedule") {
        if data.len() < 16 {
            continue;
        }
        let (times, text) = data.split_at(16);
        let Ok(text) = std::str::from_utf8(text) else {
            continue;
        };
        let Ok(s) = Schedule::parse(text) else {
            continue;
        };
        parsed += 1;
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&times[i..i + 8]);
            i64::from_le_bytes(b) % (100_000 * 365 * 86_400)
        };
        let (a, b) = (word(0), word(8));
        if let Some(n) = s.next_after(a) {
            assert!(n > a, "{}", path.display());
        }
        let _ = due(&s, Some(a), a, b);
        let _ = due(&s, None, a, b);
    }
    assert!(parsed >= 5, "the seed schedules no longer parse");
}

#[test]
fn duration_corpus() {
    use vd_core::duration::{parse, parse_cli};
    let mut parsed = 0;
    for (path, data) in corpus("duration") {
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        let (manifest, cli) = (parse(text), parse_cli(text));
        if let Ok(d) = &manifest {
            parsed += 1;
            assert_eq!(cli.as_ref().ok(), Some(d), "{}", path.display());
            if let Ok(ms) = u64::try_from(d.as_millis()) {
                assert_eq!(
                    parse(&format!("{ms}ms")).map(|d| d.as_millis()),
                    Ok(u128::from(ms))
                );
            }
        }
    }
    assert!(parsed >= 5, "the seed durations no longer parse");
}

#[test]
fn cluster_nodes_in_the_redis_text_corpus() {
    let mut parsed = 0;
    for (_, data) in corpus("redis_text") {
        if let Ok(text) = std::str::from_utf8(&data) {
            let ok = vd_core::redis::cluster::parse_nodes(text).is_ok_and(|p| !p.is_empty());
            parsed += usize::from(ok);
        }
    }
    assert!(parsed >= 1, "the CLUSTER NODES seed no longer parses");
}
