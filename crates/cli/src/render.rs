//! Printing listings as tables or JSON.

use crate::args::Output;
use comfy_table::presets::NOTHING;
use comfy_table::Table;
use serde::Serialize;

/// A table with the house style: no borders, header row.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING)
        .set_header(header.iter().map(|h| h.to_string()));
    t
}

/// Prints `value` as JSON, or the table `build` makes.
pub fn print<T: Serialize>(output: Output, value: &T, build: impl FnOnce() -> Table) {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Output::Table => println!("{}", build().to_string().trim_end()),
    }
}

/// "3m", "2h", "5d" since a unix-ms time.
pub fn age(since_ms: Option<i64>) -> String {
    let Some(since) = since_ms else {
        return "-".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(since);
    let s = ((now - since) / 1000).max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Whether stderr is a terminal (progress lines are redrawn only there).
pub fn interactive() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}
