//! Duration strings, one grammar for the manifest and the command line: a whole or decimal
//! number with a unit, alone or in a sequence (`"500ms"`, `"1.5s"`, `"2m"`, `"1m 30s"`, `"90d"`),
//! as `humantime` reads them. On the command line a bare whole number also means seconds
//! (`--timeout 90`), as it always has; a manifest asks for the unit instead.

use std::time::Duration;

/// Why a string is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a duration like \"30s\", \"500ms\", \"5m\" or \"1m 30s\" ({why})")]
pub struct DurationError {
    /// What was given.
    pub text: String,
    /// What is wrong with it.
    pub why: String,
}

/// The longest duration vd accepts anywhere: longer ones are typos (and beyond a few hundred
/// years they no longer fit in nanoseconds, so vd could not even write them back).
pub const MAX: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Parses a duration string (see the module). Surrounding blanks are ignored.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| DurationError {
        text: text.to_string(),
        why: e.to_string(),
    })?;
    capped(text, d)
}

fn capped(text: &str, d: Duration) -> Result<Duration, DurationError> {
    if d > MAX {
        return Err(DurationError {
            text: text.to_string(),
            why: "longer than 100 years".into(),
        });
    }
    Ok(d)
}

/// [`parse`], where a bare whole number means seconds (the command line's habit).
pub fn parse_cli(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let secs = t.parse::<u64>().map_err(|e| DurationError {
            text: text.to_string(),
            why: e.to_string(),
        })?;
        return capped(text, Duration::from_secs(secs));
    }
    parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_grammar_for_manifest_and_command_line() {
        let ms = |n: u64| Ok(Duration::from_millis(n));
        // text -> (manifest, command line)
        let table = [
            ("500ms", ms(500), ms(500)),
            ("1.5s", ms(1500), ms(1500)),
            ("2m", ms(120_000), ms(120_000)),
            ("1m 30s", ms(90_000), ms(90_000)),
            (" 10s ", ms(10_000), ms(10_000)),
            ("90d", ms(90 * 86_400_000), ms(90 * 86_400_000)),
        ];
        for (text, manifest, cli) in table {
            assert_eq!(parse(text), manifest, "{text}");
            assert_eq!(parse_cli(text), cli, "{text}");
        }
        assert!(parse("90").is_err(), "a manifest asks for the unit");
        assert_eq!(parse_cli("90"), Ok(Duration::from_secs(90)));
        for bad in [
            "",
            "s",
            "10 parsecs",
            "-5s",
            "1e3s",
            "99999999999999999999999s",
        ] {
            let e = parse_cli(bad).expect_err(bad);
            assert!(e.to_string().contains("is not a duration"), "{e}");
        }
    }
}
