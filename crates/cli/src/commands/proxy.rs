//! `vd proxy`: runs the master-following proxy in the foreground until Ctrl-C or SIGTERM.

use crate::args::ProxyArgs;
use crate::error::CliError;

/// Checks the addresses and serves.
pub async fn run(args: ProxyArgs) -> Result<(), CliError> {
    super::server::init_tracing(None);
    for a in args.upstreams.iter().chain(&args.sentinels) {
        let port = a.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
        if !matches!(port, Some(Ok(p)) if p > 0) {
            return Err(CliError::usage(
                format!("`{a}` is not HOST:PORT"),
                "write each --upstream and --sentinel as HOST:PORT, e.g. cache-0.data.voodu:6379",
            ));
        }
    }
    let secret = |var: &str| std::env::var(var).ok().filter(|p| !p.is_empty());
    let password = secret(vd_core::redis::PASSWORD_VAR);
    let sentinel_password = secret(vd_core::redis::SENTINEL_PASSWORD_VAR);
    let tls = match &args.tls_dir {
        Some(dir) => Some(std::sync::Arc::new(
            vd_proxy::tls::Tls::from_dir(dir).map_err(|e| {
                CliError::usage(
                    e.to_string(),
                    "--tls-dir names the directory vd mounts a TLS redis's proxy pods' certificate in (tls.crt, tls.key, ca.crt)",
                )
            })?,
        )),
        None => None,
    };
    let opts = vd_proxy::Options {
        listen: args.listen,
        read_listen: args.read_listen,
        discovery: vd_proxy::discovery::Config {
            upstreams: args.upstreams,
            sentinels: args.sentinels,
            master_name: args.master_name,
            feed: args.feed,
            id: args.id,
            password,
            sentinel_password,
            tls: tls.as_ref().map(|t| t.trust.clone()),
        },
        multiplex: !args.dedicated,
        stats: vd_proxy::metrics::Stats::default(),
        tls,
    };
    // Bound before the proxy starts, so a busy address fails the command with nothing running.
    if let Some(addr) = args.metrics_addr {
        let listener = vd_server::http::bind_metrics(addr).await?;
        let stats = opts.stats.clone();
        tokio::spawn(async move {
            let render = std::sync::Arc::new(move || stats.encode());
            if let Err(e) = vd_server::http::serve_rendered_metrics(listener, render).await {
                tracing::error!(error = %e, "metrics listener stopped");
            }
        });
    }
    // The proxy has its own runtime so `--threads` can pick its size: with one thread,
    // clients and the lanes they share run in one event loop (a lane then writes everything
    // queued in a loop turn at once, and no wake-up crosses threads).
    let threads = args.threads.max(1);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("vd-proxy".into())
        .spawn(move || {
            let rt = if threads == 1 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .enable_all()
                    .build()
            };
            let result = match rt {
                Ok(rt) => rt.block_on(vd_proxy::run(opts)).map_err(|e| e.to_string()),
                Err(e) => Err(format!("cannot start the proxy's runtime: {e}")),
            };
            let _ = done_tx.send(result);
        })
        .map_err(|e| {
            CliError::usage(
                format!("cannot start the proxy thread: {e}"),
                "check the process's thread limit",
            )
        })?;
    tokio::select! {
        r = done_rx => match r {
            Ok(Ok(())) | Err(_) => Ok(()),
            Ok(Err(e)) => Err(CliError::usage(e, "check the --listen addresses and --upstream list")),
        },
        _ = super::server::interrupted() => Ok(()),
    }
}
