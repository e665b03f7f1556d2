//! The docker runtime's pod names: each pod's last address on `voodu0` (asked for again when
//! it restarts, so its name keeps pointing at it) and the hosts file every container mounts
//! at `/etc/hosts`, which lists the published pods at those addresses.
//!
//! Both change from concurrent tasks (a pod starting records its address, the controller
//! publishes the pod list), and the file is rendered from both. One lock covers the two and
//! the write, so writers are serialized and the last one always renders the latest state: with
//! a snapshot taken under the lock and written after it, an older snapshot could be written
//! last and leave a name at a stale address until the next change.

use crate::error::RuntimeError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use vd_core::hosts::HostEntry;

/// The pod addresses and hosts file of one root.
pub struct PodNames {
    addresses_path: PathBuf,
    hosts_path: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Pod name → its last `voodu0` address.
    addresses: BTreeMap<String, String>,
    /// The pods the controller last published.
    published: Vec<HostEntry>,
}

/// `<pod> <ip>` lines; anything else is skipped (the file is vd's own, but may be damaged).
fn parse_addresses(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (pod, ip) = l.split_once(' ')?;
            Some((pod.to_string(), ip.trim().to_string()))
        })
        .filter(|(_, ip)| ip.parse::<std::net::Ipv4Addr>().is_ok())
        .collect()
}

impl PodNames {
    /// Loads the addresses recorded in `run_dir` and makes sure the hosts file exists there
    /// (containers bind-mount it, so it must exist before the first one starts).
    pub fn open(run_dir: &Path) -> Result<PodNames, RuntimeError> {
        let names = PodNames {
            addresses_path: run_dir.join("docker-addresses"),
            hosts_path: run_dir.join("docker-hosts"),
            state: Mutex::new(State::default()),
        };
        let addresses =
            parse_addresses(&std::fs::read_to_string(&names.addresses_path).unwrap_or_default());
        names.lock().addresses = addresses;
        if !names.hosts_path.exists() {
            std::fs::write(&names.hosts_path, vd_core::hosts::render(&[], 0))
                .map_err(|e| RuntimeError::at("write", &names.hosts_path, e))?;
        }
        Ok(names)
    }

    /// The hosts file every container mounts.
    pub fn hosts_path(&self) -> &Path {
        &self.hosts_path
    }

    /// A poisoned lock only means another task panicked mid-update; the maps are still whole
    /// (every update is a single insert or assignment), so go on with them.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `pod`'s last address.
    pub fn address(&self, pod: &str) -> Option<String> {
        self.lock().addresses.get(pod).cloned()
    }

    /// Records the address docker gave `pod` (`None`: the pod is gone), so its restart asks for
    /// the same one; on a change, the record and the hosts file are rewritten.
    pub fn remember(&self, pod: &str, ip: Option<String>) -> Result<(), RuntimeError> {
        let mut state = self.lock();
        let changed = match ip {
            Some(ip) if !ip.is_empty() => {
                state.addresses.insert(pod.to_string(), ip.clone()) != Some(ip)
            }
            Some(_) => false,
            None => state.addresses.remove(pod).is_some(),
        };
        if !changed {
            return Ok(());
        }
        let text: String = state
            .addresses
            .iter()
            .map(|(p, ip)| format!("{p} {ip}\n"))
            .collect();
        std::fs::write(&self.addresses_path, text)
            .map_err(|e| RuntimeError::at("write", &self.addresses_path, e))?;
        self.write_hosts(&state)
    }

    /// The pods the controller publishes now; the hosts file is rewritten.
    pub fn publish(&self, entries: &[HostEntry]) -> Result<(), RuntimeError> {
        let mut state = self.lock();
        state.published = entries.to_vec();
        self.write_hosts(&state)
    }

    /// Renders the published pods' names at their recorded addresses, also while a pod is
    /// down (a name that vanished would fail a client's lookup instead of its connect). The
    /// shared alias stays with docker's resolver, which follows readiness without a file.
    fn write_hosts(&self, state: &State) -> Result<(), RuntimeError> {
        let entries: Vec<HostEntry> = state
            .published
            .iter()
            .filter_map(|e| {
                let pod = vd_core::naming::pod_name(&e.resource, e.ordinal);
                let ip = state.addresses.get(&pod)?.clone();
                Some(HostEntry {
                    ip,
                    ready: false,
                    ..e.clone()
                })
            })
            .collect();
        crate::in_place::overwrite(
            &self.hosts_path,
            vd_core::hosts::render(&entries, 0).as_bytes(),
        )
        .map_err(|e| RuntimeError::at("write", &self.hosts_path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use vd_core::{Kind, ResourceRef};

    fn entry(ordinal: u32) -> HostEntry {
        HostEntry {
            resource: ResourceRef::new(Kind::Redis, "data", "cache"),
            ordinal,
            ip: String::new(),
            ready: true,
        }
    }

    #[test]
    fn addresses_survive_a_reopen_and_skip_damaged_lines() {
        let dir = tempfile::tempdir().unwrap();
        let names = PodNames::open(dir.path()).unwrap();
        names
            .remember("data-cache.0", Some("172.30.0.5".into()))
            .unwrap();
        names.remember("data-cache.1", Some(String::new())).unwrap();
        assert_eq!(
            names.address("data-cache.1"),
            None,
            "an empty address is no address"
        );
        let mut text = std::fs::read_to_string(dir.path().join("docker-addresses")).unwrap();
        text.push_str("garbage\nweb-app.0 not-an-ip\n");
        std::fs::write(dir.path().join("docker-addresses"), text).unwrap();
        let again = PodNames::open(dir.path()).unwrap();
        assert_eq!(again.address("data-cache.0").as_deref(), Some("172.30.0.5"));
        assert_eq!(again.address("web-app.0"), None);
        again.remember("data-cache.0", None).unwrap();
        assert_eq!(again.address("data-cache.0"), None);
    }

    #[test]
    fn the_hosts_file_lists_published_pods_at_their_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let names = PodNames::open(dir.path()).unwrap();
        let hosts = || std::fs::read_to_string(names.hosts_path()).unwrap();
        names.publish(&[entry(0), entry(1)]).unwrap();
        assert!(!hosts().contains("cache-0"), "no address yet: not listed");
        names
            .remember("data-cache.0", Some("172.30.0.5".into()))
            .unwrap();
        assert!(hosts().contains("172.30.0.5"), "{}", hosts());
        assert!(hosts().contains("cache-0.data.voodu"), "{}", hosts());
        // A shorter list after a longer one leaves nothing of the longer behind.
        names
            .remember("data-cache.1", Some("172.30.0.6".into()))
            .unwrap();
        names.publish(&[]).unwrap();
        assert!(!hosts().contains("172.30.0."), "{}", hosts());
        assert_eq!(hosts(), vd_core::hosts::render(&[], 0));
    }

    /// Many pods starting at once while the controller publishes: however the writers
    /// interleave, the file ends as the render of the final state.
    #[test]
    fn concurrent_writers_leave_the_latest_state() {
        let dir = tempfile::tempdir().unwrap();
        let names = Arc::new(PodNames::open(dir.path()).unwrap());
        let all: Vec<HostEntry> = (0..32).map(entry).collect();
        let start = Arc::new(std::sync::Barrier::new(32));
        let threads: Vec<_> = (0..32u32)
            .map(|o| {
                let names = Arc::clone(&names);
                let all = all.clone();
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    for round in 0..20u32 {
                        names.publish(&all).unwrap();
                        let ip = format!("172.30.{}.{}", round, o + 2);
                        names
                            .remember(&format!("data-cache.{o}"), Some(ip))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let want: Vec<HostEntry> = (0..32)
            .map(|o| HostEntry {
                ip: format!("172.30.19.{}", o + 2),
                ready: false,
                ..entry(o)
            })
            .collect();
        assert_eq!(
            std::fs::read_to_string(names.hosts_path()).unwrap(),
            vd_core::hosts::render(&want, 0)
        );
    }
}
