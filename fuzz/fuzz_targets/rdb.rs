//! Fuzzes the RDB checks a backup and a restore rely on: any bytes, checked whole
//! (`rdb::verify`) and streamed in chunks (`rdb::Verifier`, as a backup checks while it
//! writes), must give a verdict, never a panic, and both must give the same one; and any line
//! must parse as a transfer header or be refused.
//!
//! Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run rdb` from this directory. The corpus in
//! `corpus/rdb/` is replayed by `cargo test -p vd-redisctl --test fuzz_corpus`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vd_redisctl::rdb::{parse_header, verify, Verifier};

fuzz_target!(|data: &[u8]| {
    let whole = verify(data);
    // Chunks of a size the input picks (1..=64), so splits fall everywhere, the trailer too.
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
        "whole {whole:?} and streamed {streamed:?} disagree"
    );
    if let Some(line) = data.split(|b| *b == b'\n').next() {
        let _ = parse_header(line);
    }
});
