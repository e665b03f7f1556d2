//! Replays the fuzz corpus of the RESP scanners (`fuzz/corpus/parse_resp`): the seeds and every
//! input a fuzzing run kept, with the fuzz target's checks, so an input that once crashed a
//! scanner stays a test.

// Failures in tests are panics by design; clippy's allow-unwrap-in-tests does not reach
// helpers outside `#[test]` functions in integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use vd_proxy::command::{classify, hello_protocol, is_read_only};
use vd_proxy::resp::{error_code, parse_command, parse_reply, pubsub_event, HEAD_ARGS};

#[test]
fn parse_resp_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/parse_resp");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        n += 1;
        let mut rest = &data[..];
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
        let mut rest = &data[..];
        while let Ok(Some(reply)) = parse_reply(rest) {
            assert!(reply.len > 0 && reply.len <= rest.len(), "{reply:?}");
            assert!(reply.start < reply.len, "{reply:?}");
            let _ = error_code(rest, &reply);
            let _ = pubsub_event(rest, &reply);
            rest = &rest[reply.len..];
        }
    }
    assert!(n > 0, "{} is empty", dir.display());
}
