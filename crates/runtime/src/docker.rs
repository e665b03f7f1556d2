//! The docker backend: each pod is a container on the user-defined bridge network `voodu0`
//! (the same names as on the process runtime: container `<scope>-<name>.<ord>`, aliases
//! `<name>-<ord>.<scope>[.voodu]`, the shared alias `<name>.<scope>[.voodu]` on ready pods),
//! per-pod named volumes, assets bind-mounted read-only, labels for re-adoption, and ports
//! published on the pod's allocated loopback address so the host reaches each pod as on the
//! process runtime.

use crate::docker_hosts::PodNames;
use crate::launch::{ExecOutput, ExitInfo, PodInfo, PodLaunch};
use crate::{RunningPod, Runtime, RuntimeError};
use async_trait::async_trait;
use bollard::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, Ipam,
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest, NetworkingConfig,
    PortBinding, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vd_core::hosts::HostEntry;
use vd_core::naming::{alias_hostnames, pod_hostnames};

/// The network every pod joins.
pub const NETWORK: &str = "voodu0";
const LABEL_ROOT: &str = "vd.root";
const LABEL_POD: &str = "vd.pod";
const LABEL_HASH: &str = "vd.hash";
const LABEL_IP: &str = "vd.ip";
const LABEL_STARTED: &str = "vd.started";
/// The pod's own DNS names and the shared alias, comma-separated: what it joins `voodu0` with,
/// kept on the container so an adopted pod can be reconnected without its spec.
const LABEL_NAMES: &str = "vd.names";
const LABEL_ALIAS: &str = "vd.alias";

/// Runs pods as docker containers.
pub struct DockerRuntime {
    docker: Docker,
    root: PathBuf,
    root_label: String,
    /// Each pod's last address on `voodu0` and the hosts file that names them.
    names: std::sync::Arc<PodNames>,
}

fn err(context: impl Into<String>, e: bollard::errors::Error) -> RuntimeError {
    RuntimeError::io(context, std::io::Error::other(e.to_string()))
}

fn not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Creates `voodu0` when missing, with its subnet pinned as user-configured: only then does
/// docker accept a fixed address when a pod is reconnected to change its aliases, so the pod
/// keeps its address (and its established connections) across that reconnect.
async fn ensure_network(docker: &Docker) -> Result<(), RuntimeError> {
    match docker.inspect_network(NETWORK, None).await {
        Ok(_) => return Ok(()),
        Err(e) if !not_found(&e) => return Err(err("inspect network voodu0", e)),
        Err(_) => {}
    }
    let create = |ipam: Option<Ipam>| NetworkCreateRequest {
        name: NETWORK.into(),
        driver: Some("bridge".into()),
        ipam,
        ..Default::default()
    };
    // Docker picks a subnet that collides with nothing on this host; keep that choice.
    let created = async {
        docker.create_network(create(None)).await?;
        let net = docker.inspect_network(NETWORK, None).await?;
        let config = net.ipam.and_then(|i| i.config).unwrap_or_default();
        if config.is_empty() {
            return Ok(());
        }
        docker.remove_network(NETWORK).await?;
        let ipam = Ipam {
            config: Some(config),
            ..Default::default()
        };
        docker.create_network(create(Some(ipam))).await.map(drop)
    };
    if let Err(e) = created.await {
        // Another server may have created it meanwhile.
        if docker.inspect_network(NETWORK, None).await.is_err() {
            return Err(err("create network voodu0", e));
        }
    }
    Ok(())
}

impl DockerRuntime {
    /// Connects to the local docker daemon and makes sure `voodu0` exists.
    pub async fn new(root: &Path) -> Result<Self, RuntimeError> {
        let docker =
            Docker::connect_with_local_defaults().map_err(|e| err("connect to docker", e))?;
        docker.ping().await.map_err(|e| {
            RuntimeError::io(
                "docker is not reachable (is the daemon running and /var/run/docker.sock accessible?)",
                std::io::Error::other(e.to_string()),
            )
        })?;
        let root = root.to_path_buf();
        for d in ["logs", "run"] {
            std::fs::create_dir_all(root.join(d))
                .map_err(|e| RuntimeError::at("create", &root.join(d), e))?;
        }
        let root_label = vd_core::hash::short(&vd_core::hash::content_digest(
            root.to_string_lossy().as_bytes(),
        ))
        .to_string();
        ensure_network(&docker).await?;
        let names = PodNames::open(&root.join("run"))?;
        Ok(Self {
            docker,
            root,
            root_label,
            names: std::sync::Arc::new(names),
        })
    }

    /// Records the address docker gave `pod` (`None`: gone), so its restart asks for the
    /// same one and its name follows.
    fn remember(&self, pod: &str, ip: Option<String>) {
        if let Err(e) = self.names.remember(pod, ip) {
            tracing::warn!(pod, error = %e, "could not record the pod's address");
        }
    }

    async fn ensure_image(&self, image: &str) -> Result<(), RuntimeError> {
        if self.docker.inspect_image(image).await.is_ok() {
            return Ok(());
        }
        let opts = CreateImageOptionsBuilder::new().from_image(image).build();
        let mut pull = self.docker.create_image(Some(opts), None, None);
        let mut last_err = None;
        while let Some(item) = pull.next().await {
            if let Err(e) = item {
                last_err = Some(e.to_string());
                break;
            }
        }
        if self.docker.inspect_image(image).await.is_ok() {
            return Ok(());
        }
        Err(RuntimeError::Invalid {
            pod: String::new(),
            message: format!(
                "image `{image}` is not on this machine and could not be pulled ({}); build the local Redis image with ./scripts/build-redis-image, or `docker pull {image}` where a registry is reachable",
                last_err.unwrap_or_else(|| "no error reported".into())
            ),
        })
    }

    fn labels(&self, l: &PodLaunch) -> HashMap<String, String> {
        HashMap::from([
            (
                LABEL_NAMES.to_string(),
                pod_hostnames(&l.owner, l.ordinal).join(","),
            ),
            (LABEL_ALIAS.to_string(), alias_hostnames(&l.owner).join(",")),
            (LABEL_ROOT.to_string(), self.root_label.clone()),
            (LABEL_POD.to_string(), l.pod.clone()),
            (LABEL_HASH.to_string(), l.hash.clone()),
            (LABEL_IP.to_string(), l.ip.clone()),
            (LABEL_STARTED.to_string(), now_ms().to_string()),
        ])
    }

    /// Streams a container's output into the pod's log file, as the process runtime writes it.
    fn follow_logs(&self, pod: &str, since: i32) {
        let docker = self.docker.clone();
        let pod = pod.to_string();
        let path = self.log_path(&pod);
        tokio::spawn(async move {
            let opts = LogsOptionsBuilder::new()
                .follow(true)
                .stdout(true)
                .stderr(true)
                .since(since)
                .build();
            let mut stream = docker.logs(&pod, Some(opts));
            let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
            else {
                return;
            };
            while let Some(Ok(chunk)) = stream.next().await {
                let _ = f.write_all(&chunk.into_bytes());
            }
        });
    }

    /// A handle on this root's container `pod`; with `running_only`, none for a stopped one.
    async fn handle(
        &self,
        pod: &str,
        running_only: bool,
    ) -> Result<Option<Box<dyn RunningPod>>, RuntimeError> {
        let info = match self.docker.inspect_container(pod, None).await {
            Ok(i) => i,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(err(format!("inspect {pod}"), e)),
        };
        let labels = info
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .unwrap_or_default();
        if labels.get(LABEL_ROOT) != Some(&self.root_label) {
            return Ok(None);
        }
        let state = info.state.unwrap_or_default();
        if running_only && state.running != Some(true) {
            return Ok(None);
        }
        Ok(Some(Box::new(DockerPod {
            docker: self.docker.clone(),
            pod_names: self.names.clone(),
            info: PodInfo {
                pod: pod.to_string(),
                id: info.id.unwrap_or_default(),
                pid: state.pid.filter(|p| *p > 0).map(|p| p as u32),
                ip: labels.get(LABEL_IP).cloned().unwrap_or_default(),
                hash: labels.get(LABEL_HASH).cloned().unwrap_or_default(),
                started_ms: labels
                    .get(LABEL_STARTED)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            },
            env: info.config.and_then(|c| c.env).unwrap_or_default(),
            names: split_names(labels.get(LABEL_NAMES)),
            net_ip: std::sync::Mutex::new(
                info.network_settings
                    .and_then(|n| n.networks)
                    .and_then(|mut n| n.remove(NETWORK))
                    .and_then(|e| e.ip_address)
                    .unwrap_or_default(),
            ),
            alias: split_names(labels.get(LABEL_ALIAS)),
            exit: tokio::sync::OnceCell::new(),
        })))
    }
}

fn split_names(label: Option<&String>) -> Vec<String> {
    label
        .map(|l| {
            l.split(',')
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The pod's endpoint on `voodu0`, if it is connected.
async fn endpoint(docker: &Docker, pod: &str) -> Option<EndpointSettings> {
    let info = docker.inspect_container(pod, None).await.ok()?;
    info.network_settings?.networks?.remove(NETWORK)
}

/// Reconnects a pod to `voodu0` with new aliases (docker cannot change them in place), keeping
/// its address where the network allows a fixed one, so its connections survive the blip.
async fn reconnect(
    docker: &Docker,
    pod: &str,
    aliases: &[String],
) -> Result<(), bollard::errors::Error> {
    let ip = endpoint(docker, pod)
        .await
        .and_then(|e| e.ip_address)
        .filter(|ip| !ip.is_empty());
    let disconnect = NetworkDisconnectRequest {
        container: pod.to_string(),
        force: Some(true),
    };
    let _ = docker.disconnect_network(NETWORK, disconnect).await;
    let connect = |ip: Option<String>| NetworkConnectRequest {
        container: pod.to_string(),
        endpoint_config: Some(EndpointSettings {
            aliases: Some(aliases.to_vec()),
            ipam_config: ip.map(|ip| EndpointIpamConfig {
                ipv4_address: Some(ip),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    if ip.is_some() && docker.connect_network(NETWORK, connect(ip)).await.is_ok() {
        return Ok(());
    }
    // A network without a user-configured subnet refuses fixed addresses.
    docker.connect_network(NETWORK, connect(None)).await
}

#[async_trait]
impl Runtime for DockerRuntime {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn limits_support(&self) -> Result<(), String> {
        Ok(())
    }

    fn pod_ip(&self, _allocated: &str) -> String {
        // Inside its own network namespace a container binds all of its addresses; the
        // allocated loopback address is where the host reaches it (published ports).
        "0.0.0.0".into()
    }

    async fn ensure_volume(&self, name: &str) -> Result<(), RuntimeError> {
        let req = VolumeCreateRequest {
            name: Some(name.into()),
            labels: Some(HashMap::from([(
                LABEL_ROOT.to_string(),
                self.root_label.clone(),
            )])),
            ..Default::default()
        };
        self.docker
            .create_volume(req)
            .await
            .map(drop)
            .map_err(|e| err(format!("create volume {name}"), e))
    }

    async fn remove_volume(&self, name: &str) -> Result<(), RuntimeError> {
        match self
            .docker
            .remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>)
            .await
        {
            Err(e) if !not_found(&e) => Err(err(format!("remove volume {name}"), e)),
            _ => Ok(()),
        }
    }

    async fn list_volumes(&self) -> Result<Vec<String>, RuntimeError> {
        let filters = HashMap::from([("label", vec![format!("{LABEL_ROOT}={}", self.root_label)])]);
        let opts = bollard::query_parameters::ListVolumesOptionsBuilder::new()
            .filters(&filters)
            .build();
        let resp = self
            .docker
            .list_volumes(Some(opts))
            .await
            .map_err(|e| err("list volumes", e))?;
        let mut v: Vec<String> = resp
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect();
        v.sort();
        Ok(v)
    }

    async fn volume_path(&self, name: &str) -> Result<PathBuf, RuntimeError> {
        // The local driver keeps a named volume's files in a directory on the daemon's host
        // (`/var/lib/docker/volumes/<name>/_data`): the controller's host, as vd publishes pod
        // ports on loopback addresses. Another driver has no such directory.
        let v = self
            .docker
            .inspect_volume(name)
            .await
            .map_err(|e| err(format!("inspect volume {name}"), e))?;
        if v.driver != "local" || v.mountpoint.is_empty() {
            return Err(RuntimeError::Invalid {
                pod: name.to_string(),
                message: format!(
                    "volume {name} uses the `{}` driver; only the local driver's files can be reached from the host",
                    v.driver
                ),
            });
        }
        Ok(PathBuf::from(v.mountpoint))
    }

    async fn start(&self, l: &PodLaunch) -> Result<Box<dyn RunningPod>, RuntimeError> {
        let image = l.image.clone().ok_or_else(|| RuntimeError::Invalid {
            pod: l.pod.clone(),
            message: "the docker runtime needs an `image`".into(),
        })?;
        self.ensure_image(&image).await.map_err(|e| match e {
            RuntimeError::Invalid { message, .. } => RuntimeError::Invalid {
                pod: l.pod.clone(),
                message,
            },
            other => other,
        })?;
        // A stopped container of an earlier run holds the name; the new spec replaces it.
        let rm = RemoveContainerOptionsBuilder::new().force(true).build();
        let _ = self.docker.remove_container(&l.pod, Some(rm)).await;

        let mut binds = Vec::new();
        for (volume, target) in &l.volumes {
            self.ensure_volume(volume).await?;
            binds.push(format!("{volume}:{target}"));
        }
        for (source, target, ro) in &l.binds {
            binds.push(format!("{source}:{target}{}", if *ro { ":ro" } else { "" }));
        }
        // Docker's resolver forgets a stopped container's names, and redis-sentinel resolves
        // a name once: per-pod names come from vd's hosts file instead, at fixed addresses.
        binds.push(format!(
            "{}:/etc/hosts:ro",
            self.names.hosts_path().to_string_lossy()
        ));
        let mut port_bindings = HashMap::new();
        let mut exposed = Vec::new();
        for p in &l.ports {
            let key = format!("{}/tcp", p.port);
            exposed.push(key.clone());
            let host_ip = p.host_ip.clone().unwrap_or_else(|| l.ip.clone());
            port_bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: Some(host_ip),
                    host_port: Some(p.port.to_string()),
                }]),
            );
        }
        let env: Vec<String> = l.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let [short, long] = pod_hostnames(&l.owner, l.ordinal);
        let hostname = short.clone();
        let aliases = vec![short, long];
        let config = |ip: Option<String>| ContainerCreateBody {
            image: Some(image.clone()),
            hostname: Some(hostname.clone()),
            cmd: (!l.command.is_empty()).then(|| l.command.clone()),
            env: Some(env.clone()),
            working_dir: Some(l.workdir.clone()),
            labels: Some(self.labels(l)),
            exposed_ports: Some(exposed.clone()),
            host_config: Some(HostConfig {
                binds: Some(binds.clone()),
                port_bindings: Some(port_bindings.clone()),
                network_mode: Some(NETWORK.into()),
                memory: l.limits.memory_bytes.map(|m| m as i64),
                nano_cpus: l.limits.cpu_millis.map(|c| (c * 1_000_000) as i64),
                init: Some(true),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    NETWORK.to_string(),
                    EndpointSettings {
                        aliases: Some(aliases.clone()),
                        ipam_config: ip.map(|ip| EndpointIpamConfig {
                            ipv4_address: Some(ip),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        let create_and_start = |ip: Option<String>| async move {
            let opts = CreateContainerOptionsBuilder::new().name(&l.pod).build();
            self.docker
                .create_container(Some(opts), config(ip))
                .await
                .map_err(|e| err(format!("create container {}", l.pod), e))?;
            self.docker
                .start_container(&l.pod, None)
                .await
                .map_err(|e| err(format!("start container {}", l.pod), e))
        };
        let wanted = self.names.address(&l.pod);
        let mut started = create_and_start(wanted.clone()).await;
        if let (Err(e), Some(ip)) = (&started, &wanted) {
            // Another container (perhaps of another root on voodu0) took the address while
            // this pod was down: take a new one; the hosts file follows.
            tracing::warn!(pod = %l.pod, ip, error = %e, "previous address unavailable");
            let rm = RemoveContainerOptionsBuilder::new().force(true).build();
            let _ = self.docker.remove_container(&l.pod, Some(rm)).await;
            started = create_and_start(None).await;
        }
        started?;
        self.remember(
            &l.pod,
            endpoint(&self.docker, &l.pod)
                .await
                .and_then(|e| e.ip_address),
        );
        self.follow_logs(&l.pod, 0);
        tracing::info!(pod = %l.pod, "container started");
        // A pod that already exited is still handed over: its wait() reports the exit code.
        self.handle(&l.pod, false)
            .await?
            .ok_or_else(|| RuntimeError::Invalid {
                pod: l.pod.clone(),
                message: "the container vanished right after starting (removed by someone else?)"
                    .into(),
            })
    }

    async fn adopt(&self, pod: &str) -> Result<Option<Box<dyn RunningPod>>, RuntimeError> {
        let h = self.handle(pod, true).await?;
        if h.is_some() {
            self.follow_logs(pod, (now_ms() / 1000) as i32);
            // A controller killed between the disconnect and the connect of an alias change
            // leaves the pod off the network: put it back (the shared alias follows readiness).
            if endpoint(&self.docker, pod).await.is_none() {
                let labels = self
                    .docker
                    .inspect_container(pod, None)
                    .await
                    .ok()
                    .and_then(|i| i.config)
                    .and_then(|c| c.labels)
                    .unwrap_or_default();
                let own = split_names(labels.get(LABEL_NAMES));
                if let Err(e) = reconnect(&self.docker, pod, &own).await {
                    tracing::warn!(pod, error = %e, "could not reconnect to voodu0");
                }
                // Its old address may be another pod's by now; its name follows the new one.
                self.remember(
                    pod,
                    endpoint(&self.docker, pod).await.and_then(|e| e.ip_address),
                );
            }
        }
        Ok(h)
    }

    /// Docker keeps an exited container's exit code until the container is removed.
    async fn recorded_exit(&self, pod: &str) -> Option<ExitInfo> {
        let info = self.docker.inspect_container(pod, None).await.ok()?;
        let labels = info.config.as_ref().and_then(|c| c.labels.clone())?;
        if labels.get(LABEL_ROOT) != Some(&self.root_label) {
            return None;
        }
        let state = info.state?;
        if state.running == Some(true) || state.finished_at.is_none() {
            return None;
        }
        Some(ExitInfo {
            code: state.exit_code.and_then(|c| i32::try_from(c).ok()),
            signal: None,
        })
    }

    async fn known_pods(&self) -> Result<Vec<String>, RuntimeError> {
        let filters = HashMap::from([("label", vec![format!("{LABEL_ROOT}={}", self.root_label)])]);
        let opts = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| err("list containers", e))?;
        Ok(list
            .into_iter()
            .filter_map(|c| c.labels.and_then(|l| l.get(LABEL_POD).cloned()))
            .collect())
    }

    async fn forget(&self, pod: &str) -> Result<(), RuntimeError> {
        self.remember(pod, None);
        let rm = RemoveContainerOptionsBuilder::new().force(true).build();
        match self.docker.remove_container(pod, Some(rm)).await {
            Err(e) if !not_found(&e) => Err(err(format!("remove container {pod}"), e)),
            _ => Ok(()),
        }
    }

    async fn publish_names(
        &self,
        entries: &[HostEntry],
        _rotation: usize,
    ) -> Result<(), RuntimeError> {
        self.names.publish(entries)
    }

    fn log_path(&self, pod: &str) -> PathBuf {
        self.root.join("logs").join(format!("{pod}.log"))
    }
}

struct DockerPod {
    docker: Docker,
    /// The root's pod addresses and hosts file, which follow this pod's address.
    pod_names: std::sync::Arc<PodNames>,
    info: PodInfo,
    env: Vec<String>,
    /// Its own names on `voodu0`, and the shared alias it gets once ready.
    names: Vec<String>,
    alias: Vec<String>,
    /// Its address on `voodu0`: probes go there, since the published port's proxy accepts
    /// connections even when nothing in the container listens.
    net_ip: std::sync::Mutex<String>,
    exit: tokio::sync::OnceCell<ExitInfo>,
}

#[async_trait]
impl RunningPod for DockerPod {
    fn info(&self) -> &PodInfo {
        &self.info
    }

    fn env(&self) -> BTreeMap<String, String> {
        self.env
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    async fn publish_ready(&self) -> Result<(), RuntimeError> {
        let pod = &self.info.pod;
        let have = endpoint(&self.docker, pod)
            .await
            .and_then(|e| e.aliases)
            .unwrap_or_default();
        if self.alias.iter().all(|a| have.contains(a)) {
            return Ok(());
        }
        let want: Vec<String> = self.names.iter().chain(&self.alias).cloned().collect();
        reconnect(&self.docker, pod, &want)
            .await
            .map_err(|e| err(format!("add {pod} to the shared alias"), e))?;
        // The address is kept where the network allows. Where not (between the disconnect and
        // the connect a pod created meanwhile can take it), the pod's name must follow the new
        // one at once: left at the old address it would reach that other pod.
        if let Some(ip) = endpoint(&self.docker, pod)
            .await
            .and_then(|e| e.ip_address)
            .filter(|ip| !ip.is_empty())
        {
            if let Err(e) = self.pod_names.remember(pod, Some(ip.clone())) {
                tracing::warn!(pod, error = %e, "could not record the pod's new address");
            }
            if let Ok(mut n) = self.net_ip.lock() {
                *n = ip;
            }
        }
        Ok(())
    }

    fn probe_ip(&self) -> String {
        match self.net_ip.lock() {
            Ok(ip) if !ip.is_empty() => ip.clone(),
            _ => self.info.ip.clone(),
        }
    }

    async fn wait(&self) -> ExitInfo {
        *self
            .exit
            .get_or_init(|| async {
                // The wait endpoint returns as the container exits (docker's own event path).
                let mut s = self.docker.wait_container(&self.info.pod, None);
                let code = match s.next().await {
                    Some(Ok(r)) => Some(r.status_code as i32),
                    Some(Err(bollard::errors::Error::DockerContainerWaitError {
                        code, ..
                    })) => Some(code as i32),
                    _ => None,
                };
                ExitInfo { code, signal: None }
            })
            .await
    }

    async fn stop(&self, grace: Duration) -> Result<ExitInfo, RuntimeError> {
        let opts = StopContainerOptionsBuilder::new()
            .t(grace.as_secs().max(1) as i32)
            .build();
        match self.docker.stop_container(&self.info.pod, Some(opts)).await {
            Err(e) if !not_found(&e) => {
                if let bollard::errors::Error::DockerResponseServerError {
                    status_code: 304, ..
                } = e
                {
                } else {
                    return Err(err(format!("stop {}", self.info.pod), e));
                }
            }
            _ => {}
        }
        Ok(tokio::time::timeout(Duration::from_secs(5), self.wait())
            .await
            .unwrap_or_default())
    }

    async fn exec(
        &self,
        argv: &[String],
        env: Option<&BTreeMap<String, String>>,
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        let env: Vec<String> = match env {
            Some(e) => e.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            None => self.env.clone(),
        };
        let run = async {
            let exec = self
                .docker
                .create_exec(
                    &self.info.pod,
                    bollard::models::ExecConfig {
                        cmd: Some(argv.to_vec()),
                        env: Some(env),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| err("exec in pod", e))?;
            let mut out = ExecOutput::default();
            let mut truncated = false;
            if let bollard::exec::StartExecResults::Attached { mut output, .. } = self
                .docker
                .start_exec(&exec.id, None)
                .await
                .map_err(|e| err("exec in pod", e))?
            {
                while let Some(chunk) = output.next().await {
                    match chunk {
                        Ok(bollard::container::LogOutput::StdErr { message }) => {
                            ExecOutput::keep(&mut out.stderr, &message, &mut truncated)
                        }
                        Ok(other) => {
                            ExecOutput::keep(&mut out.stdout, &other.into_bytes(), &mut truncated)
                        }
                        Err(e) => return Err(err("exec in pod", e)),
                    }
                }
            }
            let r = self
                .docker
                .inspect_exec(&exec.id)
                .await
                .map_err(|e| err("exec in pod", e))?;
            out.code = r.exit_code.unwrap_or(-1) as i32;
            out.truncated = truncated;
            Ok(out)
        };
        tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| RuntimeError::Timeout(timeout))?
    }
}
