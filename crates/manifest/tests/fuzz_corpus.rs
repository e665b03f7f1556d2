//! Replays the fuzz corpus of the manifest parser (`fuzz/corpus/parse_manifest`): the seeds
//! (the examples) and every input a fuzzing run kept, with the fuzz target's checks, so an
//! input that once crashed the parser stays a test.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use vd_manifest::{parse_str_with, Options};

#[test]
fn parse_manifest_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/parse_manifest");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        n += 1;
        let result = parse_str_with(
            Path::new("/nonexistent/fuzz.hcl"),
            text,
            &Options::offline(),
        );
        if let Err(errors) = result {
            let _ = format!("{errors}{errors:#}");
        }
    }
    assert!(n > 0, "{} is empty", dir.display());
}
