//! One module per group of commands; `run` dispatches and renders errors.

mod apply;
mod backup;
mod config;
mod exec;
mod import;
mod logs;
mod proxy;
mod redis;
mod resources;
mod restore;
mod run;
mod server;

use crate::args::{Cli, Command};
use crate::client::Client;
use crate::error::CliError;
use std::path::PathBuf;

/// What every command gets.
pub struct Ctx {
    /// Root directory.
    pub root: PathBuf,
    /// Client for the root's server.
    pub client: Client,
    /// Output format.
    pub output: crate::args::Output,
}

/// The default root: /var/lib/vd for root (the process runtime needs root), else a state dir.
fn default_root() -> PathBuf {
    if nix_is_root() {
        return PathBuf::from("/var/lib/vd");
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("vd")
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Runs a command and returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let root = cli.root.clone().unwrap_or_else(default_root);
    let root = std::path::absolute(&root).unwrap_or(root);
    let ctx = Ctx {
        client: Client::new(&root),
        root,
        output: cli.output,
    };
    let result = match cli.command {
        Command::Server {
            runtime,
            metrics_addr,
            ui_addr,
            pod_cert_validity,
        } => {
            let extra = server::Listeners {
                metrics: metrics_addr,
                ui: ui_addr,
            };
            server::serve_foreground(&ctx, runtime, extra, pod_cert_validity).await
        }
        Command::Up {
            files,
            runtime,
            detach,
            metrics_addr,
            ui_addr,
        } => {
            let extra = server::Listeners {
                metrics: metrics_addr,
                ui: ui_addr,
            };
            server::up(&ctx, &files, runtime, detach, extra).await
        }
        Command::Apply(args) => apply::apply(&ctx, &args).await,
        Command::Proxy(args) => proxy::run(args).await,
        Command::Diff { files } => apply::diff(&ctx, &files).await,
        Command::Get { kind } => resources::get(&ctx, kind.as_deref()).await,
        Command::Ps => resources::get(&ctx, Some("pods")).await,
        Command::Describe {
            reference,
            name,
            expanded,
        } => match name {
            Some(n) => match resources::two_word_ref(&reference, &n) {
                Ok(r) => resources::describe(&ctx, &r, expanded).await,
                Err(e) => Err(e),
            },
            None => resources::describe(&ctx, &reference, expanded).await,
        },
        Command::Delete {
            reference,
            files,
            prune,
        } => match reference {
            Some(r) => resources::delete(&ctx, &r, prune).await,
            None => resources::delete_files(&ctx, &files, prune).await,
        },
        Command::Scale {
            reference,
            replicas,
            no_wait,
            timeout,
        } => resources::scale(&ctx, &reference, replicas, no_wait, timeout).await,
        Command::Stop { reference } => resources::stop_or_start(&ctx, &reference, true).await,
        Command::Start { reference } => resources::stop_or_start(&ctx, &reference, false).await,
        Command::Exec {
            reference,
            ordinal,
            timeout,
            command,
        } => match exec::exec(&ctx, &reference, ordinal, timeout, &command).await {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
        Command::Config(args) => config::config(&ctx, args).await,
        Command::Logs {
            reference,
            run,
            follow,
            ordinal,
            tail,
        } => logs::logs(&ctx, &reference, follow, (ordinal, run), tail).await,
        Command::Run { reference, detach } => run::run(&ctx, &reference, detach).await,
        Command::Restart { reference } => resources::restart(&ctx, &reference).await,
        Command::Events { reference, limit } => {
            resources::events(&ctx, reference.as_deref(), limit).await
        }
        Command::Shutdown { stop_pods } => server::shutdown(&ctx, stop_pods).await,
        Command::RedisLink {
            provider,
            consumer,
            reads,
            sentinel,
            proxy,
            no_restart,
        } => {
            redis::link(
                &ctx,
                &provider,
                &consumer,
                (reads, sentinel, proxy),
                no_restart,
            )
            .await
        }
        Command::RedisUnlink {
            provider,
            consumer,
            no_restart,
        } => redis::unlink(&ctx, &provider, &consumer, no_restart).await,
        Command::RedisFailover {
            reference,
            replica,
            shard,
            no_restart,
        } => redis::failover(&ctx, &reference, replica, shard, no_restart).await,
        Command::RedisUrl {
            reference,
            external,
        } => redis::url(&ctx, &reference, external).await,
        Command::RedisSentinelUrl { reference } => redis::sentinel_url(&ctx, &reference).await,
        Command::RedisCa { reference } => redis::ca(&ctx, &reference).await,
        Command::RedisCli { reference, args } => redis::cli(&ctx, &reference, &args).await,
        Command::RedisInfo { reference } => redis::info(&ctx, &reference).await,
        Command::RedisBackup {
            reference,
            destination,
            source,
        } => backup::backup(&ctx, &reference, destination.as_deref(), source).await,
        Command::RedisBackups {
            reference,
            destination,
        } => backup::list(&ctx, &reference, destination.as_deref()).await,
        Command::RedisRestore {
            reference,
            from,
            with_sentinel,
            force,
        } => restore::restore(&ctx, &reference, &from, with_sentinel, force).await,
        Command::RedisImport {
            reference,
            from,
            rdb,
            mode,
            force,
            with_sentinel,
            timeout,
        } => match (rdb, from) {
            // An RDB import is a restore: one implementation, restore's semantics.
            (Some(file), _) => {
                restore::restore(&ctx, &reference, &file, with_sentinel, force).await
            }
            (None, from) => {
                let from = from.unwrap_or_default();
                import::import(&ctx, &reference, &from, mode.as_deref(), force, timeout).await
            }
        },
        Command::RedisNewPassword {
            reference,
            no_restart,
        } => redis::new_password(&ctx, &reference, no_restart).await,
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            let code = e.exit_code();
            report(e);
            code
        }
    }
}

/// Prints an error with miette's renderer (source snippets, help).
pub fn report(e: CliError) {
    // Wrap only at spaces: image names, paths and resource names stay whole, so they can be
    // copied from the message (the defaults break at hyphens and slashes).
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .break_words(false)
                .word_separator(textwrap::WordSeparator::AsciiSpace)
                .word_splitter(textwrap::WordSplitter::NoHyphenation)
                .build(),
        )
    }));
    eprintln!("{:?}", miette::Report::new(e));
}
