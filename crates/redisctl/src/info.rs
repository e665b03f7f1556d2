//! Parsing `INFO` output. Pure.

use std::collections::BTreeMap;

/// All sections of an `INFO` reply: section -> field -> value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    /// Fields by lower-case section name.
    pub sections: BTreeMap<String, BTreeMap<String, String>>,
}

impl Info {
    /// Parses the text of an `INFO` reply.
    pub fn parse(text: &str) -> Info {
        let mut info = Info::default();
        let mut section = String::from("default");
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(name) = line.strip_prefix("# ") {
                section = name.trim().to_ascii_lowercase();
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                info.sections
                    .entry(section.clone())
                    .or_default()
                    .insert(k.to_string(), v.to_string());
            }
        }
        info
    }

    /// A field from any section.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.sections
            .values()
            .find_map(|s| s.get(field))
            .map(String::as_str)
    }

    /// A numeric field, 0 when missing.
    pub fn num(&self, field: &str) -> i64 {
        self.get(field).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// The replication section, interpreted.
    pub fn replication(&self) -> Replication {
        let role = match self.get("role") {
            Some("master") => Role::Master,
            Some("slave") => Role::Replica,
            _ => Role::Unknown,
        };
        let replicas = self
            .sections
            .get("replication")
            .map(|s| {
                s.iter()
                    .filter(|(k, _)| {
                        k.starts_with("slave") && k[5..].chars().all(|c| c.is_ascii_digit())
                    })
                    .filter_map(|(_, v)| ReplicaLink::parse(v))
                    .collect()
            })
            .unwrap_or_default();
        Replication {
            role,
            master_host: self.get("master_host").map(str::to_string),
            master_port: self.get("master_port").and_then(|p| p.parse().ok()),
            link_up: self.get("master_link_status") == Some("up"),
            master_repl_offset: self.num("master_repl_offset"),
            replica_repl_offset: self.get("slave_repl_offset").and_then(|v| v.parse().ok()),
            replid: self.get("master_replid").unwrap_or_default().to_string(),
            replid2: self.get("master_replid2").unwrap_or_default().to_string(),
            connected_replicas: self.num("connected_slaves") as u32,
            replicas,
            priority: self
                .get("slave_priority")
                .or_else(|| self.get("replica_priority"))
                .and_then(|v| v.parse().ok()),
            loading: self.get("loading") == Some("1"),
            sync_in_progress: self.get("master_sync_in_progress") == Some("1"),
        }
    }
}

/// A node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts writes.
    Master,
    /// Follows a master.
    Replica,
    /// Could not tell.
    Unknown,
}

/// One `slaveN:` line of a master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaLink {
    /// Announced address (an IP or, with vd, the pod name).
    pub ip: String,
    /// Port.
    pub port: u16,
    /// `online`, `wait_bgsave`, `send_bulk`.
    pub state: String,
    /// Offset acknowledged by the replica.
    pub offset: i64,
    /// Seconds since the last ack.
    pub lag: i64,
}

impl ReplicaLink {
    fn parse(v: &str) -> Option<Self> {
        let kv: BTreeMap<&str, &str> = v.split(',').filter_map(|p| p.split_once('=')).collect();
        Some(Self {
            ip: kv.get("ip")?.to_string(),
            port: kv.get("port")?.parse().ok()?,
            state: kv.get("state").unwrap_or(&"").to_string(),
            offset: kv.get("offset").and_then(|v| v.parse().ok()).unwrap_or(0),
            lag: kv.get("lag").and_then(|v| v.parse().ok()).unwrap_or(0),
        })
    }
}

/// `INFO replication` (plus loading state), interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    /// Master or replica.
    pub role: Role,
    /// For a replica: its master's host.
    pub master_host: Option<String>,
    /// For a replica: its master's port.
    pub master_port: Option<u16>,
    /// For a replica: `master_link_status:up`.
    pub link_up: bool,
    /// The node's replication offset.
    pub master_repl_offset: i64,
    /// For a replica: the offset it has processed.
    pub replica_repl_offset: Option<i64>,
    /// Current replication id.
    pub replid: String,
    /// Previous replication id (after a promotion).
    pub replid2: String,
    /// For a master: connected replicas.
    pub connected_replicas: u32,
    /// For a master: one entry per replica.
    pub replicas: Vec<ReplicaLink>,
    /// For a replica: its priority (0 = never promote).
    pub priority: Option<u32>,
    /// Loading a dataset from disk.
    pub loading: bool,
    /// A full sync is running.
    pub sync_in_progress: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=cache-1.data.voodu,port=6379,state=online,offset=1234,lag=0\r\nslave1:ip=127.9.0.4,port=6379,state=wait_bgsave,offset=0,lag=1\r\nmaster_failover_state:no-failover\r\nmaster_replid:abc\r\nmaster_replid2:0000\r\nmaster_repl_offset:1234\r\n\r\n# Persistence\r\nloading:0\r\n";
    const REPLICA: &str = "# Replication\nrole:slave\nmaster_host:cache-0.data.voodu\nmaster_port:6379\nmaster_link_status:up\nmaster_sync_in_progress:0\nslave_repl_offset:1200\nslave_priority:100\nmaster_replid:abc\nmaster_repl_offset:1200\n";

    #[test]
    fn master_and_replicas() {
        let r = Info::parse(MASTER).replication();
        assert_eq!(r.role, Role::Master);
        assert_eq!(r.connected_replicas, 2);
        assert_eq!(r.replicas[0].ip, "cache-1.data.voodu");
        assert_eq!(r.replicas[0].offset, 1234);
        assert_eq!(r.replicas[1].state, "wait_bgsave");
        assert_eq!(r.master_repl_offset, 1234);
        assert!(!r.loading);
    }

    #[test]
    fn replica() {
        let r = Info::parse(REPLICA).replication();
        assert_eq!(r.role, Role::Replica);
        assert_eq!(r.master_host.as_deref(), Some("cache-0.data.voodu"));
        assert!(r.link_up);
        assert_eq!(r.replica_repl_offset, Some(1200));
        assert_eq!(r.priority, Some(100));
    }

    #[test]
    fn garbage_is_empty_not_a_panic() {
        let r = Info::parse("::::\n# \nslave0:junk\n").replication();
        assert_eq!(r.role, Role::Unknown);
        assert!(r.replicas.is_empty());
    }
}
