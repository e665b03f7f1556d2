//! `vd`: run stateful services from HCL manifests.

// First: its output macros are used by every module below.
#[macro_use]
mod render;

mod args;
mod client;
mod commands;
mod error;

use clap::{CommandFactory, Parser};

fn main() {
    // The pod helpers must run before any thread exists: unshare/setns of a mount namespace
    // refuse multi-threaded callers.
    let argv: Vec<String> = std::env::args().collect();
    match argv.get(1).map(String::as_str) {
        Some(vd_runtime::init::INIT_ARG) => {
            let spec = argv
                .get(2)
                .map(std::path::PathBuf::from)
                .unwrap_or_default();
            vd_runtime::init::run_init(&spec)
        }
        Some(vd_runtime::init::EXEC_ARG) => vd_runtime::init::run_exec(&argv[2..]),
        _ => {}
    }
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::InvalidSubcommand => unknown_command(&e),
        Err(e) => e.exit(),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vd: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(commands::run(cli));
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}

/// Commands a typo must never be steered to: they stop, delete or overwrite something.
const NEVER_SUGGESTED: [&str; 10] = [
    "delete",
    "shutdown",
    "stop",
    "restart",
    "scale",
    "redis:unlink",
    "redis:restore",
    "redis:import",
    "redis:failover",
    "redis:new-password",
];

/// The closest command to `typed` that changes nothing destructive, if one is close.
fn safe_suggestion<'a>(typed: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names
        .filter(|n| !NEVER_SUGGESTED.contains(n))
        .map(|n| (strsim::jaro_winkler(typed, n), n))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
}

/// An unknown command: said plainly, with a suggestion only when it is a safe one.
fn unknown_command(e: &clap::Error) -> ! {
    let typed = e
        .get(clap::error::ContextKind::InvalidSubcommand)
        .map(|v| v.to_string())
        .unwrap_or_default();
    let cmd = args::Cli::command();
    let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
    eprintln!("error: unknown command `{typed}`");
    if let Some(s) = safe_suggestion(&typed, names.iter().copied()) {
        eprintln!("  tip: a similar command exists: `vd {s}`");
    }
    eprintln!("\nsee `vd --help` for every command");
    std::process::exit(2);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_never_steered_to_destructive_commands() {
        let cmd = args::Cli::command();
        let names: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
        for typed in [
            "stp",
            "stpo",
            "shutdwn",
            "delet",
            "dlete",
            "restat",
            "redis:unlnk",
            "redis:restor",
            "redis:failvoer",
        ] {
            let got = safe_suggestion(typed, names.iter().copied());
            assert!(
                got.is_none_or(|s| !NEVER_SUGGESTED.contains(&s)),
                "{typed} -> {got:?}"
            );
        }
        assert_eq!(
            safe_suggestion("evnets", names.iter().copied()),
            Some("events")
        );
        assert_eq!(
            safe_suggestion("redis:ifno", names.iter().copied()),
            Some("redis:info")
        );
        for n in NEVER_SUGGESTED {
            assert!(
                names.contains(&n) || ["stop", "scale"].contains(&n),
                "{n} is not a command"
            );
        }
    }
}
