//! Command-line arguments.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// vd runs stateful services (Redis first) from HCL manifests and keeps them healthy.
#[derive(Debug, Parser)]
#[command(name = "vd", version, about, propagate_version = true)]
pub struct Cli {
    /// Root directory: store, socket, pods, volumes, logs.
    #[arg(long, global = true, env = "VD_ROOT")]
    pub root: Option<PathBuf>,
    /// Output format for listings.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How listings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable tables.
    Table,
    /// JSON for scripts.
    Json,
}

/// Pod backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// Host processes in their own mount namespaces (default).
    Process,
    /// Docker containers on the `voodu0` network.
    Docker,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller in the foreground.
    Server {
        /// Pod backend.
        #[arg(long, value_enum, default_value_t = RuntimeKind::Process)]
        runtime: RuntimeKind,
        /// Also serve Prometheus metrics at http://IP:PORT/metrics (off by default).
        #[arg(long, value_name = "IP:PORT")]
        metrics_addr: Option<std::net::SocketAddr>,
        /// Also serve a read-only status page at http://IP:PORT/ (off by default): every
        /// redis's topology, timeline and backups, updated live, with no secret on it.
        #[arg(long, value_name = "IP:PORT")]
        ui_addr: Option<std::net::SocketAddr>,
        /// How long the certificates vd issues to TLS pods are valid; they are renewed, with no
        /// restart, once two thirds of it have passed.
        #[arg(long, value_parser = humantime_duration, default_value = "90d")]
        pod_cert_validity: std::time::Duration,
    },
    /// Start a server if none runs, apply, and watch until Ctrl-C; then stop the pods (volumes stay).
    Up {
        /// Manifest files.
        #[arg(short = 'f', long = "file", required = true)]
        files: Vec<PathBuf>,
        /// Pod backend for an embedded server.
        #[arg(long, value_enum, default_value_t = RuntimeKind::Process)]
        runtime: RuntimeKind,
        /// Apply, wait until ready, print status once and leave everything running.
        #[arg(long)]
        detach: bool,
        /// An embedded server also serves Prometheus metrics at http://IP:PORT/metrics.
        #[arg(long, value_name = "IP:PORT")]
        metrics_addr: Option<std::net::SocketAddr>,
        /// An embedded server also serves the read-only status page at http://IP:PORT/.
        #[arg(long, value_name = "IP:PORT")]
        ui_addr: Option<std::net::SocketAddr>,
    },
    /// Create or update resources from manifests, then wait until their pods are ready.
    Apply(ApplyArgs),
    /// Show what an apply would change.
    Diff {
        /// Manifest files.
        #[arg(short = 'f', long = "file", required = true)]
        files: Vec<PathBuf>,
    },
    /// List resources (`vd get`, `vd get statefulsets`), pods (`vd get pods`) or cronjobs
    /// with their next and last runs (`vd get cronjobs`).
    Get {
        /// statefulset, deployment, asset, redis, cronjob, pods, or nothing for all resources.
        kind: Option<String>,
    },
    /// List pods (as `vd get pods`).
    Ps,
    /// Show a resource with its pods and events: `vd describe KIND/SCOPE/NAME`,
    /// `vd describe SCOPE/NAME` or `vd describe KIND SCOPE/NAME`.
    Describe {
        /// KIND/SCOPE/NAME, SCOPE/NAME, or a KIND followed by SCOPE/NAME.
        reference: String,
        /// SCOPE/NAME, when the first word is a kind.
        name: Option<String>,
        /// For a macro (redis): show the statefulset and files it expands into.
        #[arg(long)]
        expanded: bool,
    },
    /// Delete a resource (or every resource a manifest declares, with -f); its volumes stay
    /// unless --prune.
    Delete {
        /// KIND/SCOPE/NAME or SCOPE/NAME.
        #[arg(required_unless_present = "files", conflicts_with = "files")]
        reference: Option<String>,
        /// Manifest files whose resources to delete.
        #[arg(short = 'f', long = "file")]
        files: Vec<PathBuf>,
        /// Also destroy its volumes and data.
        #[arg(long)]
        prune: bool,
    },
    /// Config buckets: `vd config SCOPE[/NAME] set K=V…|get [K]|unset K…|list`.
    Config(ConfigArgs),
    /// Print a workload's logs, one pod's (`vd logs data-cache.1`), or a cronjob's last run's
    /// (`vd logs cronjob/SCOPE/NAME`).
    Logs {
        /// SCOPE/NAME, KIND/SCOPE/NAME or a pod name.
        reference: String,
        /// For a cronjob: this run instead of the last one.
        #[arg(long, value_name = "N")]
        run: Option<u64>,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
        /// Only this pod.
        #[arg(long)]
        ordinal: Option<u32>,
        /// Lines from the end to start with (0: all).
        #[arg(long, default_value_t = 0)]
        tail: usize,
    },
    /// Run a cronjob now, ignoring its schedule; prints its output and fails if it fails.
    Run {
        /// cronjob/SCOPE/NAME.
        reference: String,
        /// Return at once with the run's number instead of waiting for it.
        #[arg(long)]
        detach: bool,
    },
    /// Change a workload's replica count (the next `vd apply` of its manifest sets it back to
    /// what the manifest says).
    Scale {
        /// SCOPE/NAME or KIND/SCOPE/NAME.
        reference: String,
        /// The number of pods.
        replicas: u32,
        /// Return without waiting for the pods.
        #[arg(long)]
        no_wait: bool,
        /// How long to wait for the pods.
        #[arg(long, value_parser = humantime_duration, default_value = "5m")]
        timeout: std::time::Duration,
    },
    /// Stop a workload's pods (top-down; spec and volumes kept) until `vd start`.
    Stop {
        /// SCOPE/NAME or KIND/SCOPE/NAME.
        reference: String,
    },
    /// Run a stopped workload's pods again.
    Start {
        /// SCOPE/NAME or KIND/SCOPE/NAME.
        reference: String,
    },
    /// Run a command inside a pod (its files, network and env) and print what it prints:
    /// `vd exec data/cache -- redis-cli ping`. Not interactive (for Redis, `vd redis:cli`).
    Exec {
        /// SCOPE/NAME, KIND/SCOPE/NAME or a pod name.
        reference: String,
        /// Which pod of a workload (default: the first running one).
        #[arg(long)]
        ordinal: Option<u32>,
        /// How long the command may run.
        #[arg(long, value_parser = humantime_duration, default_value = "60s")]
        timeout: std::time::Duration,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Rolling restart of a workload, top-down.
    Restart {
        /// SCOPE/NAME or KIND/SCOPE/NAME.
        reference: String,
    },
    /// Recent events.
    Events {
        /// Only this resource (KIND/SCOPE/NAME).
        reference: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Run a master-following Redis proxy (what `<name>-proxy` pods run).
    Proxy(ProxyArgs),
    /// Link a redis to a consumer: writes REDIS_URL (and REDIS_READ_URL) into its bucket.
    #[command(name = "redis:link")]
    RedisLink {
        /// The redis, SCOPE/NAME.
        provider: String,
        /// The consumer's bucket, SCOPE/NAME.
        consumer: String,
        /// Only a round-robin REDIS_URL (read-only consumers).
        #[arg(long, conflicts_with = "sentinel")]
        reads: bool,
        /// For sentinel-aware clients: REDIS_URL, REDIS_SENTINEL_HOSTS, REDIS_MASTER_NAME.
        #[arg(long)]
        sentinel: bool,
        /// REDIS_URL and REDIS_READ_URL on the redis's proxy (the default when it has one).
        #[arg(long, conflicts_with_all = ["sentinel", "reads"])]
        proxy: bool,
        /// Don't roll the consumer's pods.
        #[arg(long)]
        no_restart: bool,
    },
    /// Remove exactly what redis:link added.
    #[command(name = "redis:unlink")]
    RedisUnlink {
        /// The redis, SCOPE/NAME.
        provider: String,
        /// The consumer, SCOPE/NAME.
        consumer: String,
        /// Don't roll the consumer's pods.
        #[arg(long)]
        no_restart: bool,
    },
    /// Live switchover to a replica: no restarts, no acknowledged write lost.
    #[command(name = "redis:failover")]
    RedisFailover {
        /// SCOPE/NAME.
        reference: String,
        /// Ordinal to promote (default: the replica automatic failover would choose).
        #[arg(long)]
        replica: Option<u32>,
        /// In a cluster: the shard to switch over, as `vd redis:info` numbers them.
        #[arg(long)]
        shard: Option<u32>,
        /// Don't roll linked consumers.
        #[arg(long)]
        no_restart: bool,
    },
    /// Print the master's URL (with --external, an address usable from this host).
    #[command(name = "redis:url")]
    RedisUrl {
        /// SCOPE/NAME.
        reference: String,
        /// An address reachable from the host instead of the pod name.
        #[arg(long)]
        external: bool,
    },
    /// Print the sentinel URL of a sentinel-watched redis:
    /// redis-sentinel://h1:26379,h2:26379,h3:26379/voodu-master
    #[command(name = "redis:sentinel-url")]
    RedisSentinelUrl {
        /// SCOPE/NAME of the data redis or of its sentinel sibling.
        reference: String,
    },
    /// Print the CA certificate (PEM) a TLS redis's certificates chain to, for clients
    /// outside vd (`redis-cli --tls --cacert FILE`, redis-py `ssl_ca_certs=FILE`).
    #[command(name = "redis:ca")]
    RedisCa {
        /// SCOPE/NAME.
        reference: String,
    },
    /// redis-cli against the master (the password goes through the environment).
    #[command(name = "redis:cli")]
    RedisCli {
        /// SCOPE/NAME.
        reference: String,
        /// Arguments for redis-cli.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Per-pod replication state: role, offset, lag, link, memory, clients.
    #[command(name = "redis:info")]
    RedisInfo {
        /// SCOPE/NAME.
        reference: String,
    },
    /// Rotate REDIS_PASSWORD: every pod first, then linked consumers, then the old one is revoked.
    /// On a sentinel sibling: its REDIS_SENTINEL_PASSWORD, the same way.
    #[command(name = "redis:new-password")]
    RedisNewPassword {
        /// SCOPE/NAME.
        reference: String,
        /// Don't roll linked consumers.
        #[arg(long)]
        no_restart: bool,
    },
    /// Stream an RDB snapshot from a pod (by default the highest-ordinal replica), verify its
    /// magic and CRC64, and write it atomically as SCOPE-NAME-<UTC time>.rdb.
    #[command(name = "redis:backup")]
    RedisBackup {
        /// SCOPE/NAME.
        reference: String,
        /// Directory to write to, or s3://BUCKET[/PREFIX] (credentials from the redis's
        /// env_from buckets); default <root>/backups/SCOPE/NAME.
        #[arg(long, value_name = "PATH|URL")]
        destination: Option<PathBuf>,
        /// Ordinal to stream from (default: the highest-ordinal replica linked to its master).
        #[arg(long, value_name = "N")]
        source: Option<u32>,
    },
    /// Replace a redis's data with an RDB file: verify it, stop the master, replace its
    /// dump.rdb atomically, start it, wait for the replicas to resync; report keys restored.
    #[command(name = "redis:restore")]
    RedisRestore {
        /// SCOPE/NAME.
        reference: String,
        /// The RDB: a file (read by the server, on this host) or s3://bucket/key.
        #[arg(long, value_name = "FILE")]
        from: String,
        /// With a sentinel sibling watching: remove the monitor from every sentinel, restore,
        /// and monitor the master again.
        #[arg(long)]
        with_sentinel: bool,
        /// Restore although appendonly yes is in effect: the AOF is rebuilt from the file.
        #[arg(long)]
        force: bool,
    },
    /// List a redis's backups: file, size, when taken (UTC).
    #[command(name = "redis:backups")]
    RedisBackups {
        /// SCOPE/NAME.
        reference: String,
        /// Directory to list, or s3://BUCKET[/PREFIX]; default <root>/backups/SCOPE/NAME.
        #[arg(long, value_name = "PATH|URL")]
        destination: Option<PathBuf>,
    },
    /// Import another Redis server's dataset: live (the master replicates from the source,
    /// then detaches keeping the data), or key by key (SCAN + DUMP/RESTORE, TTLs kept) with
    /// --mode copy or when the source refuses replication.
    #[command(name = "redis:import")]
    RedisImport {
        /// SCOPE/NAME.
        reference: String,
        /// redis://[user:password@]host[:port][/db] (percent-encode special characters; set
        /// VD_IMPORT_FROM instead to keep the password out of the process list).
        #[arg(
            long,
            value_name = "URL",
            env = "VD_IMPORT_FROM",
            hide_env_values = true,
            required_unless_present = "rdb",
            conflicts_with = "rdb"
        )]
        from: Option<String>,
        /// Import an RDB file instead: the same as `vd redis:restore REF --from FILE`.
        #[arg(long, value_name = "FILE")]
        rdb: Option<String>,
        /// live (default; copies instead when the source refuses replication) or copy.
        #[arg(long, value_parser = ["live", "copy"], conflicts_with = "rdb")]
        mode: Option<String>,
        /// Import into a redis that holds keys (live replaces them all; copy overwrites keys
        /// of the same name). With --rdb, restore's --force (appendonly yes).
        #[arg(long)]
        force: bool,
        /// With --rdb: restore's --with-sentinel.
        #[arg(long, requires = "rdb")]
        with_sentinel: bool,
        /// Give up after this long.
        #[arg(long, default_value = "10m", value_parser = humantime_duration)]
        timeout: std::time::Duration,
    },
    /// Stop the server; with --stop-pods also its pods (volumes stay).
    Shutdown {
        /// Stop every pod first.
        #[arg(long)]
        stop_pods: bool,
    },
}

/// `vd apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Manifest files.
    #[arg(short = 'f', long = "file", required = true)]
    pub files: Vec<PathBuf>,
    /// Return after storing, without waiting for pods.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for pods to be ready.
    #[arg(long, default_value = "5m", value_parser = humantime_duration)]
    pub timeout: std::time::Duration,
}

/// `vd config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Scope (flag form: `vd config set -s SCOPE -n NAME K=V`).
    #[arg(short = 's', long)]
    pub scope: Option<String>,
    /// Name.
    #[arg(short = 'n', long)]
    pub name: Option<String>,
    /// Don't roll pods; they pick up the change on their next restart.
    #[arg(long)]
    pub no_restart: bool,
    /// `SCOPE[/NAME] VERB ARGS…` or `VERB ARGS…` with -s/-n.
    pub rest: Vec<String>,
}

fn humantime_duration(s: &str) -> Result<std::time::Duration, String> {
    parse_duration(s)
}

/// Parses a duration argument: `300ms`, `10s`, `1m 30s`, `90d`, or bare seconds (`90`).
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    vd_core::duration::parse_cli(s).map_err(|e| e.to_string())
}

/// `vd proxy`: port `--listen` sends everything to the current master, `--read-listen` spreads
/// connections over ready replicas. The proxy's own ROLE checks authenticate with
/// REDIS_PASSWORD, and it authenticates to the sentinels with REDIS_SENTINEL_PASSWORD (both
/// from the environment, never argv); clients authenticate themselves.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Where clients connect for the master.
    #[arg(long, value_name = "IP:PORT")]
    pub listen: std::net::SocketAddr,
    /// Where clients connect for reads.
    #[arg(long, value_name = "IP:PORT")]
    pub read_listen: Option<std::net::SocketAddr>,
    /// A data pod, HOST:PORT (repeat for each).
    #[arg(long = "upstream", value_name = "HOST:PORT", required = true)]
    pub upstreams: Vec<String>,
    /// A sentinel, HOST:PORT (repeat for each), followed for +switch-master.
    #[arg(long = "sentinel", value_name = "HOST:PORT")]
    pub sentinels: Vec<String>,
    /// The name the sentinels monitor.
    #[arg(long, default_value = "voodu-master")]
    pub master_name: String,
    /// The controller's feed file (JSON: epoch, master, hold).
    #[arg(long)]
    pub feed: Option<PathBuf>,
    /// This proxy's name in hold acknowledgements.
    #[arg(long, env = "VD_PROXY_ID", default_value = "proxy")]
    pub id: String,
    /// Give every client an upstream connection of its own instead of sharing one per
    /// connection state for plain commands (slower: see docs/benchmarks.md).
    #[arg(long)]
    pub dedicated: bool,
    /// Threads serving clients (one event loop batches best; see docs/benchmarks.md).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,
    /// Serve the proxy's Prometheus metrics (connections, commands, master switches, holds,
    /// upstream errors) at http://IP:PORT/metrics.
    #[arg(long, value_name = "IP:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Speak TLS to clients and to the data pods and sentinels, with the certificate, key and
    /// CA in this directory (`tls.crt`, `tls.key`, `ca.crt`; a renewed certificate is picked up
    /// without a restart).
    #[arg(long, value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
}
