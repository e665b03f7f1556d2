//! `vd server`, `vd up`, `vd shutdown`.

use super::apply::{load, send, targets, wait_ready};
use super::Ctx;
use crate::args::RuntimeKind;
use crate::error::CliError;
use crate::render::{self, age, table};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use vd_server::types::{PodView, ShutdownRequest};
use vd_server::{Server, ServerConfig};

async fn start_controller(
    ctx: &Ctx,
    runtime: RuntimeKind,
    pod_cert_validity: Duration,
) -> Result<Server, CliError> {
    let exe = std::env::current_exe().map_err(|e| CliError::io("find the vd binary", e))?;
    let rt: Arc<dyn vd_runtime::Runtime> = match runtime {
        RuntimeKind::Process => Arc::new(
            vd_runtime::process::ProcessRuntime::new(&ctx.root, exe)
                .map_err(|e| CliError::Server(vd_server::ServerError::Runtime(e)))?,
        ),
        RuntimeKind::Docker => Arc::new(
            vd_runtime::docker::DockerRuntime::new(&ctx.root)
                .await
                .map_err(|e| CliError::Server(vd_server::ServerError::Runtime(e)))?,
        ),
    };
    Ok(Server::start(ServerConfig {
        root: ctx.root.clone(),
        runtime: rt,
        pod_cert_validity,
    })
    .await?)
}

pub(super) fn init_tracing(to_file: Option<PathBuf>) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("VD_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match to_file.and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
    }) {
        Some(f) => {
            let _ = builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .try_init();
        }
        None => {
            // Colour only for a person at a terminal: stderr sent to a file or a journal
            // gets plain text.
            use std::io::IsTerminal;
            let _ = builder
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .try_init();
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM (what `kill`, `timeout` and service managers send).
pub(super) async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// The server's optional TCP listeners: `--metrics-addr` and `--ui-addr`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Listeners {
    /// Prometheus metrics.
    pub metrics: Option<SocketAddr>,
    /// The status page.
    pub ui: Option<SocketAddr>,
}

/// [`Listeners`] bound, not serving yet.
pub struct Bound {
    metrics: Option<tokio::net::TcpListener>,
    ui: Option<tokio::net::TcpListener>,
}

impl Listeners {
    /// Binds every address given; done before the controller starts so a busy or invalid
    /// address fails the command with nothing started.
    async fn bind(self) -> Result<Bound, CliError> {
        let metrics = match self.metrics {
            Some(a) => Some(vd_server::http::bind_metrics(a).await?),
            None => None,
        };
        let ui = match self.ui {
            Some(a) => Some(vd_server::ui::bind(a).await?),
            None => None,
        };
        Ok(Bound { metrics, ui })
    }

    /// Says which given addresses an already running server ignores.
    fn ignored_by_running_server(self, ctx: &Ctx) {
        for (flag, addr) in [("--metrics-addr", self.metrics), ("--ui-addr", self.ui)] {
            if let Some(a) = addr {
                eprintln!(
                    "a vd server already runs on {}: {flag} {a} is ignored (pass it to that server)",
                    ctx.root.display()
                );
            }
        }
    }
}

impl Bound {
    /// Serves each bound listener for the life of the process.
    fn spawn(self, server: &Server) {
        if let Some(l) = self.metrics {
            let s = server.clone();
            tokio::spawn(async move {
                if let Err(e) = vd_server::http::serve_metrics(s, l).await {
                    tracing::error!(error = %e, "metrics listener stopped");
                }
            });
        }
        if let Some(l) = self.ui {
            let s = server.clone();
            tokio::spawn(async move {
                if let Err(e) = vd_server::ui::serve(s, l).await {
                    tracing::error!(error = %e, "status page listener stopped");
                }
            });
        }
    }
}

/// `vd server`: the controller in the foreground. Ctrl-C stops the controller only; pods keep
/// running and the next server adopts them.
pub async fn serve_foreground(
    ctx: &Ctx,
    runtime: RuntimeKind,
    extra: Listeners,
    pod_cert_validity: Duration,
) -> Result<(), CliError> {
    init_tracing(None);
    let bound = extra.bind().await?;
    let ctl = start_controller(ctx, runtime, pod_cert_validity).await?;
    bound.spawn(&ctl);
    vd_server::serve(ctl, interrupted()).await?;
    Ok(())
}

/// `vd shutdown [--stop-pods]`.
pub async fn shutdown(ctx: &Ctx, stop_pods: bool) -> Result<(), CliError> {
    let _: serde_json::Value = ctx
        .client
        .post("/v1/shutdown", &ShutdownRequest { stop_pods })
        .await?;
    outln!(
        "server stopping{}",
        if stop_pods {
            " (pods stopped, volumes kept)"
        } else {
            "; pods keep running"
        }
    );
    Ok(())
}

/// `vd up -f FILE`.
pub async fn up(
    ctx: &Ctx,
    files: &[PathBuf],
    runtime: RuntimeKind,
    detach: bool,
    extra: Listeners,
) -> Result<(), CliError> {
    let manifest = load(files)?;
    let embedded = if ctx.client.alive().await {
        extra.ignored_by_running_server(ctx);
        None
    } else {
        std::fs::create_dir_all(&ctx.root)
            .map_err(|e| CliError::io(format!("create {}", ctx.root.display()), e))?;
        init_tracing(Some(ctx.root.join("server.log")));
        let bound = extra.bind().await?;
        let ctl = start_controller(
            ctx,
            runtime,
            vd_server::orchestration::certs::DEFAULT_POD_VALIDITY,
        )
        .await?;
        bound.spawn(&ctl);
        let c = ctl.clone();
        tokio::spawn(async move {
            if let Err(e) = vd_server::serve(c, std::future::pending()).await {
                eprintln!("vd: server stopped: {e}");
            }
        });
        for _ in 0..100 {
            if ctx.client.alive().await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "started an embedded vd server on {} (logs: {})",
            ctx.root.display(),
            ctx.root.join("server.log").display()
        );
        Some(ctl)
    };
    let resp = send(ctx, &manifest, false).await?;
    for c in &resp.changes {
        outln!("{} {:?} (revision {})", c.id, c.change, c.revision);
    }
    let workloads = targets(&resp);
    wait_ready(ctx, &workloads, Duration::from_secs(300)).await?;
    print_pods(ctx).await?;
    if detach {
        if embedded.is_some() {
            eprintln!("--detach keeps pods running, but this embedded server exits with this command; run `vd server` to supervise them");
        }
        return Ok(());
    }
    eprintln!("watching; Ctrl-C stops the pods (volumes stay)");
    let mut last = String::new();
    let stop = interrupted();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                let pods: Vec<PodView> = ctx.client.get("/v1/pods").await.unwrap_or_default();
                let line: String = pods.iter().map(|p| format!("{}={}{} ", p.pod, p.state, if p.ready { "/ready" } else { "" })).collect();
                if line != last {
                    eprintln!("{}", line.trim_end());
                    last = line;
                }
            }
        }
    }
    eprintln!("stopping pods…");
    match embedded {
        Some(server) => {
            server.ctl.stop_all_pods(Duration::from_secs(60)).await;
            server.ctl.shutdown.notify_one();
        }
        None => {
            for id in workloads.keys() {
                let path = format!(
                    "/v1/resources/{}/{}/{}?prune=false",
                    id.kind, id.scope, id.name
                );
                let _: Result<serde_json::Value, _> = ctx.client.delete(&path).await;
            }
        }
    }
    eprintln!("stopped; volumes kept");
    Ok(())
}

async fn print_pods(ctx: &Ctx) -> Result<(), CliError> {
    let pods: Vec<PodView> = ctx.client.get("/v1/pods").await?;
    render::print(ctx.output, &pods, || {
        let mut t = table(&["POD", "READY", "STATE", "ADDRESS", "PID", "AGE"]);
        for p in &pods {
            t.add_row(vec![
                p.pod.clone(),
                if p.ready { "yes" } else { "no" }.into(),
                p.state.to_string(),
                p.address.join(","),
                p.pid.map(|x| x.to_string()).unwrap_or_else(|| "-".into()),
                age(p.started_ms),
            ]);
        }
        t
    });
    Ok(())
}
