//! Fuzzes the manifest parser: any UTF-8 text must give resources or diagnostics, never a panic.
//!
//! Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run parse_manifest` from this directory. The corpus in
//! `corpus/parse_manifest/` is replayed by `cargo test -p vd-manifest --test fuzz_corpus`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use vd_manifest::{parse_str_with, Options};

fuzz_target!(|text: &str| {
    // Offline: the fuzzer would otherwise find `file("/any/path")` and `url("http://...")` and
    // spend its time on disk and network IO instead of the parser.
    let result = parse_str_with(
        Path::new("/nonexistent/fuzz.hcl"),
        text,
        &Options::offline(),
    );
    if let Err(errors) = result {
        // Rendering must not panic either (line/column math on odd input).
        let _ = format!("{errors}{errors:#}");
    }
});
