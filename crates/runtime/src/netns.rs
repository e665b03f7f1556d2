//! A network of its own for every pod of the process runtime, without Docker.
//!
//! Each pod gets its own network namespace (its own loopback, so a program may bind
//! `0.0.0.0:6379` or `127.0.0.1` as in a container, and two pods may both listen on 6379) with
//! one interface, `eth0`, holding the pod's stable address in the root's `127.X.0.0/16`. The
//! interfaces are macvlan devices in bridge mode on one parent per root (the host end of a veth
//! pair that leads nowhere), with one more macvlan on the host holding `127.X.0.1`:
//!
//! - pods reach each other through the macvlan bridge, which switches between its devices
//!   without the host's forwarding path (no `ip_forward`, no firewall rule, nothing routed off
//!   the machine: the parent has no other link);
//! - the host reaches the pods through its own macvlan: a `/16` route in the `local` routing
//!   table, more specific than the kernel's `127.0.0.0/8`, sends the root's addresses to it;
//! - loopback addresses are not routed between interfaces by default, so `route_localnet` is
//!   set on the host's macvlan and on each pod's `eth0`.
//!
//! Setting up a pod's side happens in two halves: the runtime creates the pod's `eth0` directly
//! inside the namespace of the pod's init process (it waits, before anything else runs); the
//! init process then gives it the address and routes, from inside (see `init.rs`).
//!
//! Everything goes through the `ip` program (iproute2): no netlink code of our own.

use crate::RuntimeError;
use std::path::Path;

/// The root's network on the host: interface names and the `/16`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNet {
    /// The veth end the macvlan devices hang off (`vdp` + the root label).
    pub parent: String,
    /// Its peer, which only exists to keep the parent up (`vdq` + label).
    pub peer: String,
    /// The host's own macvlan, holding `<subnet>.0.1` (`vdh` + label).
    pub host: String,
    /// The first two octets of the root's addresses, e.g. `127.182`.
    pub subnet: String,
}

impl HostNet {
    /// The names for a root (label: a short hash of its path) and its subnet.
    pub fn new(label: &str, subnet: &str) -> HostNet {
        // Interface names are at most 15 bytes: 3 + 8.
        let label: String = label.chars().take(8).collect();
        HostNet {
            parent: format!("vdp{label}"),
            peer: format!("vdq{label}"),
            host: format!("vdh{label}"),
            subnet: subnet.to_string(),
        }
    }

    /// The subnet of a pod address: `127.182.0.5` -> `127.182`.
    pub fn subnet_of(address: &str) -> Option<String> {
        let mut parts = address.split('.');
        let (a, b) = (parts.next()?, parts.next()?);
        (a == "127" && b.parse::<u8>().is_ok()).then(|| format!("{a}.{b}"))
    }

    /// The host's address on the pods' network.
    pub fn gateway(&self) -> String {
        format!("{}.0.1", self.subnet)
    }

    /// The pods' network, `127.X.0.0/16`.
    pub fn cidr(&self) -> String {
        format!("{}.0.0/16", self.subnet)
    }
}

/// Where `ip` is: `/usr/sbin` and `/sbin` are not on every PATH (nor on a pod init's, which
/// has none), so the standard directories are searched.
pub fn ip_program() -> std::path::PathBuf {
    [
        "/usr/sbin",
        "/sbin",
        "/usr/bin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ]
    .iter()
    .map(|d| Path::new(d).join("ip"))
    .find(|p| p.exists())
    .unwrap_or_else(|| "ip".into())
}

/// Runs `ip ARGS…`; an error says what was attempted and what `ip` answered.
async fn ip(args: &[&str]) -> Result<(), RuntimeError> {
    let out = tokio::process::Command::new(ip_program())
        .args(args)
        .output()
        .await
        .map_err(|e| RuntimeError::io("run `ip` (iproute2)", e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(RuntimeError::io(
        format!("ip {}", args.join(" ")),
        std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
    ))
}

/// The subnets (`127.X`) other roots' pod networks use on this host: the addresses of their
/// host-side interfaces (`vdh…`, not `own`). A new root picks another, so routes never clash.
pub fn subnets_in_use(own: &HostNet) -> Vec<String> {
    let Ok(out) = std::process::Command::new(ip_program())
        .args(["-o", "-4", "addr", "show"])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let dev = words.nth(1)?;
            let addr = words.skip_while(|w| *w != "inet").nth(1)?;
            (dev.starts_with("vdh") && dev != own.host).then_some(())?;
            HostNet::subnet_of(addr.split('/').next()?)
        })
        .collect()
}

/// Whether an interface exists in the host's network namespace.
fn exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Sets `route_localnet` on a host interface: 127/8 traffic may cross it.
fn route_localnet(dev: &str) -> Result<(), RuntimeError> {
    let p = format!("/proc/sys/net/ipv4/conf/{dev}/route_localnet");
    std::fs::write(&p, "1").map_err(|e| RuntimeError::at("enable route_localnet", Path::new(&p), e))
}

/// Creates the root's host side if it is missing; idempotent, so every pod start may call it
/// (a restarted controller, or a host that rebooted, finds it again or rebuilds it).
pub async fn ensure_host(net: &HostNet) -> Result<(), RuntimeError> {
    if !exists(&net.parent) {
        ip(&[
            "link",
            "add",
            &net.parent,
            "type",
            "veth",
            "peer",
            "name",
            &net.peer,
        ])
        .await?;
    }
    ip(&["link", "set", &net.parent, "up"]).await?;
    ip(&["link", "set", &net.peer, "up"]).await?;
    if !exists(&net.host) {
        ip(&[
            "link",
            "add",
            &net.host,
            "link",
            &net.parent,
            "type",
            "macvlan",
            "mode",
            "bridge",
        ])
        .await?;
    }
    let address = format!("{}/16", net.gateway());
    // `replace`: the same address again is not an error.
    ip(&["addr", "replace", &address, "dev", &net.host]).await?;
    ip(&["link", "set", &net.host, "up"]).await?;
    route_localnet(&net.host)?;
    ip(&[
        "route",
        "replace",
        &net.cidr(),
        "dev",
        &net.host,
        "table",
        "local",
        "src",
        &net.gateway(),
    ])
    .await
}

/// Keeps `address` a local address of the host (a `/32` `local` route, more specific than the
/// pod network's `/16`): a pod that runs on the host's network binds it there.
pub async fn keep_on_host(address: &str) -> Result<(), RuntimeError> {
    ip(&[
        "route",
        "replace",
        "local",
        &format!("{address}/32"),
        "dev",
        "lo",
        "table",
        "local",
    ])
    .await
}

/// Undoes [`keep_on_host`] (nothing to do when there is no such route).
pub async fn release_from_host(address: &str) -> Result<(), RuntimeError> {
    let out = tokio::process::Command::new(ip_program())
        .args(["route", "show", "table", "local", &format!("{address}/32")])
        .output()
        .await
        .map_err(|e| RuntimeError::io("run `ip` (iproute2)", e))?;
    if String::from_utf8_lossy(&out.stdout).trim().is_empty() {
        return Ok(());
    }
    ip(&[
        "route",
        "del",
        "local",
        &format!("{address}/32"),
        "table",
        "local",
    ])
    .await
}

/// The MAC address of the pod holding `address`: a locally administered one derived from the
/// address, so it is the same at every restart of the pod. A new MAC for the same address
/// would leave the neighbours' ARP caches pointing at the old one, and their connections to
/// the restarted pod hanging until those entries expire (a replica would wait a minute for
/// its master).
pub fn mac_for(address: &str) -> Option<String> {
    let octets: Vec<u8> = address
        .split('.')
        .map(|o| o.parse().ok())
        .collect::<Option<Vec<u8>>>()?;
    let [a, b, c, d] = octets.as_slice() else {
        return None;
    };
    Some(format!("02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}"))
}

/// Gives the process `pid` (waiting, in a network namespace of its own) an `eth0` on the
/// root's network, with the stable MAC of its `address`.
pub async fn add_pod_link(net: &HostNet, pid: u32, address: &str) -> Result<(), RuntimeError> {
    let mac = mac_for(address).ok_or_else(|| {
        RuntimeError::io(
            "set up the pod's network",
            std::io::Error::other(format!("`{address}` is not an IPv4 address")),
        )
    })?;
    // The init process unshares its network namespace right after it starts; until it has,
    // `netns PID` would name the host's own namespace (and create an `eth0` there).
    let own = std::fs::read_link("/proc/self/ns/net")
        .map_err(|e| RuntimeError::io("read this process's network namespace", e))?;
    let theirs = format!("/proc/{pid}/ns/net");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match std::fs::read_link(&theirs) {
            Ok(ns) if ns != own => break,
            Ok(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await
            }
            Ok(_) => {
                return Err(RuntimeError::io(
                    format!("set up pod process {pid}'s network"),
                    std::io::Error::other("it did not create its network namespace within 10 s"),
                ))
            }
            Err(e) => {
                return Err(RuntimeError::at(
                    "read the pod's network namespace",
                    Path::new(&theirs),
                    e,
                ))
            }
        }
    }
    let pid = pid.to_string();
    ip(&[
        "link",
        "add",
        "eth0",
        "link",
        &net.parent,
        "address",
        &mac,
        "netns",
        &pid,
        "type",
        "macvlan",
        "mode",
        "bridge",
    ])
    .await
}

/// Removes the root's host side (the pods' links go with their namespaces, and with the
/// parent); nothing to do when it is gone.
pub async fn remove_host(net: &HostNet) -> Result<(), RuntimeError> {
    if exists(&net.host) {
        ip(&["link", "del", &net.host]).await?;
    }
    if exists(&net.parent) {
        ip(&["link", "del", &net.parent]).await?;
    }
    Ok(())
}

/// What the pod's init process does inside its new namespace once its `eth0` exists: loopback
/// up, the address, `route_localnet`, and the `/16` route in the `local` table (so the pod's
/// own `127.0.0.0/8` does not swallow its neighbours' addresses). Blocking: it runs before
/// the pod's command, single-threaded.
pub fn configure_inside(address: &str, subnet: &str) -> Result<(), String> {
    let run = |args: &[&str]| -> Result<(), String> {
        let out = std::process::Command::new(ip_program())
            .args(args)
            .output()
            .map_err(|e| format!("run `ip` (iproute2): {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    run(&["link", "set", "lo", "up"])?;
    run(&["addr", "add", &format!("{address}/16"), "dev", "eth0"])?;
    // The pod's previous eth0 (same stable MAC) goes away with its namespace, which the kernel
    // tears down in the background after the old process exits; until then this one cannot
    // come up ("Address already in use"). That takes milliseconds, seconds on a loaded host.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut wait = std::time::Duration::from_millis(5);
    loop {
        match run(&["link", "set", "eth0", "up"]) {
            Ok(()) => break,
            Err(e) if e.contains("in use") && std::time::Instant::now() < deadline => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(std::time::Duration::from_millis(200));
            }
            Err(e) => return Err(e),
        }
    }
    for dev in ["all", "eth0"] {
        let p = format!("/proc/sys/net/ipv4/conf/{dev}/route_localnet");
        std::fs::write(&p, "1").map_err(|e| format!("enable route_localnet ({p}): {e}"))?;
    }
    run(&[
        "route",
        "add",
        &format!("{subnet}.0.0/16"),
        "dev",
        "eth0",
        "table",
        "local",
        "src",
        address,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_subnets_parse() {
        let n = HostNet::new("0123456789abcdef", "127.182");
        assert_eq!(n.parent, "vdp01234567");
        assert!(n.parent.len() <= 15 && n.peer.len() <= 15 && n.host.len() <= 15);
        assert_eq!(n.gateway(), "127.182.0.1");
        assert_eq!(n.cidr(), "127.182.0.0/16");
        assert_eq!(
            HostNet::subnet_of("127.182.0.5").as_deref(),
            Some("127.182")
        );
        assert_eq!(HostNet::subnet_of("10.0.0.5"), None);
        assert_eq!(HostNet::subnet_of("0.0.0.0"), None);
        assert_eq!(mac_for("127.182.0.5").as_deref(), Some("02:00:7f:b6:00:05"));
        assert_eq!(mac_for("nope"), None);
    }
}
