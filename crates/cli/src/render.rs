//! Printing listings as tables or JSON.

use crate::args::Output;
use comfy_table::presets::NOTHING;
use comfy_table::Table;
use serde::Serialize;

/// Writes to stdout. A reader that went away (`vd events | head -1`) ends the command at once
/// and quietly with status 141, what a shell reports for a program killed by SIGPIPE, as the
/// usual Unix tools do; any other write error is reported.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("vd: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// Writes raw bytes to stdout, with [`write_out`]'s handling of a reader that went away.
pub fn write_bytes(bytes: &[u8]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("vd: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// `println!` for command output, through [`write_out`].
macro_rules! outln {
    () => { $crate::render::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::render::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` for command output, through [`write_out`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::render::write_out(format_args!($($arg)*)) };
}

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
        Output::Json => outln!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Output::Table => outln!("{}", build().to_string().trim_end()),
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
