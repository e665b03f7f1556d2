//! Replays the fuzz corpora of the parsers in this crate (`fuzz/corpus/rdb`,
//! `fuzz/corpus/redis_text`): the seeds and every input a fuzzing run kept, with the checks the
//! fuzz targets make, so an input that once crashed a parser stays a test.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use vd_redisctl::info::Info;
use vd_redisctl::migrate::{keyspace, last_refusal, parse_url, refusal};
use vd_redisctl::rdb::{parse_header, verify, Verifier};
use vd_redisctl::{parse_promotion, parse_switch_master};

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
fn rdb_corpus() {
    let mut whole_ok = 0;
    for (path, data) in corpus("rdb") {
        let whole = verify(&data);
        let chunk = usize::from(data.first().copied().unwrap_or(0) % 64) + 1;
        let mut v = Verifier::new();
        for c in data.chunks(chunk) {
            v.update(c);
        }
        assert_eq!(v.bytes(), data.len() as u64);
        let streamed = v.finish();
        assert_eq!(
            whole.as_ref().ok(),
            streamed.as_ref().ok(),
            "{}",
            path.display()
        );
        whole_ok += usize::from(whole.is_ok());
        if let Some(line) = data.split(|b| *b == b'\n').next() {
            let _ = parse_header(line);
        }
    }
    // The seeds hold real RDB files that redis-server wrote.
    assert!(whole_ok >= 2, "the seed RDB files no longer verify");
}

#[test]
fn redis_text_corpus() {
    for (path, data) in corpus("redis_text") {
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        let info = Info::parse(text);
        let _ = keyspace(&info);
        let _ = info.replication();
        let _ = parse_switch_master(text);
        let _ = parse_promotion(text);
        if let Ok(u) = parse_url(text) {
            assert!(u.port > 0, "{}", path.display());
            let _ = u.redacted();
        }
        let _ = refusal(text);
        let _ = last_refusal(text);
    }
}
