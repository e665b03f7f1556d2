//! Fuzzes duration strings (probe periods, `down_after`, `--timeout` and friends): any text
//! must parse or be refused, never panic; a parsed duration written back the way vd's own
//! messages write durations must parse to the same value.
//!
//! Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run duration` from this directory. The corpus in
//! `corpus/duration/` is replayed by `cargo test -p vd-core --test fuzz_corpus`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vd_core::duration::{parse, parse_cli};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let manifest = parse(text);
    let cli = parse_cli(text);
    if let Ok(d) = &manifest {
        assert_eq!(cli.as_ref().ok(), Some(d), "{text:?}: the command line reads it too");
        let ms = d.as_millis();
        if let Ok(ms) = u64::try_from(ms) {
            let again = parse(&format!("{ms}ms")).expect("vd's own form parses");
            assert_eq!(again.as_millis(), u128::from(ms), "{text:?}");
        }
    }
});
