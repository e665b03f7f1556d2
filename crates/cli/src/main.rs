//! `vd`: run stateful services from HCL manifests.

mod args;
mod client;
mod commands;
mod error;
mod render;

use clap::Parser;

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
    let cli = args::Cli::parse();
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
