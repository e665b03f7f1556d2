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
    let password = std::env::var("REDIS_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
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
        },
        multiplex: !args.no_multiplex,
    };
    tokio::select! {
        r = vd_proxy::run(opts) => r.map_err(|e| CliError::usage(e.to_string(), "check the --listen addresses and --upstream list")),
        _ = super::server::interrupted() => Ok(()),
    }
}
