//! Fuzzes the RESP scanners: any bytes, read as a stream of client commands and as a stream of
//! server replies, must give frames, `Ok(None)` or an error, never a panic, and every frame
//! found must consume at least one byte of what is there.
//!
//! Run with `RUSTC_BOOTSTRAP=1 cargo fuzz run parse_resp` from this directory. The corpus in
//! `corpus/parse_resp/` is replayed by `cargo test -p vd-proxy --test fuzz_corpus`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vd_proxy::command::{classify, hello_protocol, is_read_only};
use vd_proxy::resp::{error_code, parse_command, parse_reply, pubsub_event, HEAD_ARGS};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some(cmd)) = parse_command(rest) {
        assert!(cmd.len > 0 && cmd.len <= rest.len(), "{cmd:?}");
        let _ = classify(rest, &cmd);
        let _ = hello_protocol(rest, &cmd);
        for i in 0..HEAD_ARGS {
            if let Some(arg) = cmd.arg(rest, i) {
                let _ = is_read_only(arg);
            }
        }
        rest = &rest[cmd.len..];
    }

    let mut rest = data;
    while let Ok(Some(reply)) = parse_reply(rest) {
        assert!(reply.len > 0 && reply.len <= rest.len(), "{reply:?}");
        assert!(reply.start < reply.len, "{reply:?}");
        let _ = error_code(rest, &reply);
        let _ = pubsub_event(rest, &reply);
        rest = &rest[reply.len..];
    }
});
