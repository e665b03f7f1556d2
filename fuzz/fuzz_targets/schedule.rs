//! Fuzzes cron schedules (`backup { schedule }`, cronjobs): any text must parse or be refused,
//! and a parsed schedule must plan runs without panicking: the next run is after the time asked
//! about, and `due` answers for any times.
//!
//! Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run schedule` from this directory. The corpus in
//! `corpus/schedule/` is replayed by `cargo test -p vd-core --test fuzz_corpus`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vd_core::schedule::{due, Schedule};

fuzz_target!(|data: &[u8]| {
    // The first 16 bytes pick the times; the rest is the schedule.
    if data.len() < 16 {
        return;
    }
    let (times, text) = data.split_at(16);
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(s) = Schedule::parse(text) else {
        return;
    };
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&times[i..i + 8]);
        // Within a few thousand years of 1970 either way, as the server's clock could be.
        i64::from_le_bytes(b) % (100_000 * 365 * 86_400)
    };
    let (a, b) = (word(0), word(8));
    if let Some(n) = s.next_after(a) {
        assert!(n > a, "{text:?}: next after {a} is {n}");
    }
    let _ = due(&s, Some(a), a, b);
    let _ = due(&s, None, a, b);
});
