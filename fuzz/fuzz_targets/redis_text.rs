//! Fuzzes the parsers of what Redis and its users send vd as text: `INFO` (and the keyspace
//! and replication fields read from it), `CLUSTER NODES`, a sentinel's failover
//! messages, an import source URL, and the replication errors an import classifies. Any text
//! must parse or be refused, never panic.
//!
//! Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run redis_text` from this directory. The corpus in
//! `corpus/redis_text/` is replayed by `cargo test -p vd-redisctl --test fuzz_corpus` and (the
//! `CLUSTER NODES` part) `cargo test -p vd-core --test fuzz_corpus`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vd_redisctl::info::Info;
use vd_redisctl::migrate::{keyspace, last_refusal, parse_url, refusal};
use vd_redisctl::{parse_promotion, parse_switch_master};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let info = Info::parse(text);
    let _ = keyspace(&info);
    let _ = info.replication();
    let _ = vd_core::redis::cluster::parse_nodes(text);
    let _ = parse_switch_master(text);
    let _ = parse_promotion(text);
    if let Ok(u) = parse_url(text) {
        assert!(u.port > 0, "{text:?} parsed to port 0");
        let _ = u.redacted();
    }
    let _ = refusal(text);
    let _ = last_refusal(text);
});
