//! `CLUSTER NODES` as plain data: what one node knows of every node of its cluster. The parser
//! takes the reply of a node vd does not control the contents of, so it never panics and
//! refuses what it cannot read instead of guessing.

use super::SLOTS;

/// One line of `CLUSTER NODES`: a node as the answering node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The node id (40 hex characters; stable for the node's life, kept in `nodes.conf`).
    pub id: String,
    /// Its address as known; empty while unknown (`noaddr`, or a node not met yet).
    pub ip: String,
    /// Its client port.
    pub port: u16,
    /// The answering node itself.
    pub myself: bool,
    /// A master (serves slots or could); otherwise a replica.
    pub master: bool,
    /// `fail`: the cluster agreed it is down.
    pub failed: bool,
    /// `fail?`: the answering node alone suspects it.
    pub suspected: bool,
    /// `handshake`: met but not yet confirmed; its id is a temporary one.
    pub handshake: bool,
    /// `noaddr`: its address is not known.
    pub noaddr: bool,
    /// The master it replicates, for a replica.
    pub master_id: Option<String>,
    /// The config epoch its slots were claimed under.
    pub config_epoch: u64,
    /// The cluster bus link to it is up.
    pub connected: bool,
    /// Slot ranges it serves, inclusive.
    pub slots: Vec<(u16, u16)>,
    /// Slots being moved: (slot, the other node's id, direction).
    pub open: Vec<OpenSlot>,
}

/// A slot in the middle of a move, as `[slot->-id]` or `[slot-<-id]` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSlot {
    /// The slot.
    pub slot: u16,
    /// The node it moves to (migrating) or comes from (importing).
    pub peer: String,
    /// Whether this node is the source (`MIGRATING`) rather than the destination.
    pub migrating: bool,
}

impl Peer {
    /// How many slots it serves.
    pub fn slot_count(&self) -> u32 {
        self.slots
            .iter()
            .map(|(a, b)| u32::from(*b) - u32::from(*a) + 1)
            .sum()
    }
}

/// One shard as a node's view shows it: a master serving slots and its replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard<'a> {
    /// The master.
    pub master: &'a Peer,
    /// Its replicas, in the view's order.
    pub replicas: Vec<&'a Peer>,
}

/// The shards of a view, numbered by their lowest slot (shard 0 serves slot 0 on a cluster vd
/// formed): the numbering `vd redis:info` shows and `vd redis:failover --shard` takes.
pub fn shards(peers: &[Peer]) -> Vec<Shard<'_>> {
    let mut out: Vec<Shard<'_>> = peers
        .iter()
        .filter(|p| p.master && !p.slots.is_empty() && !p.handshake)
        .map(|m| Shard {
            master: m,
            replicas: peers
                .iter()
                .filter(|r| !r.master && r.master_id.as_deref() == Some(m.id.as_str()))
                .collect(),
        })
        .collect();
    out.sort_by_key(|s| s.master.slots.iter().map(|(a, _)| *a).min());
    out
}

/// Why a `CLUSTER NODES` reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CLUSTER NODES line {line}: {message}")]
pub struct NodesError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

/// Parses a `CLUSTER NODES` reply.
pub fn parse_nodes(text: &str) -> Result<Vec<Peer>, NodesError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        out.push(parse_line(line).map_err(|message| NodesError {
            line: i + 1,
            message,
        })?);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<Peer, String> {
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    let [id, addr, flags, master, _ping, _pong, epoch, link, slots @ ..] = fields.as_slice() else {
        return Err(format!(
            "expected at least 8 fields, found {}",
            fields.len()
        ));
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("node id `{id}` is not hexadecimal"));
    }
    // `ip:port@cport[,hostname]`; the ip may be empty, and may be IPv6 (colons inside).
    let addr = addr.split(',').next().unwrap_or_default();
    let addr = addr.split('@').next().unwrap_or_default();
    let (ip, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("address `{addr}` has no port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port `{port}` is not a number"))?;
    let flags: Vec<&str> = flags.split(',').collect();
    let has = |f: &str| flags.contains(&f);
    let config_epoch = epoch
        .parse()
        .map_err(|_| format!("config epoch `{epoch}` is not a number"))?;
    let mut peer = Peer {
        id: id.to_string(),
        ip: ip.to_string(),
        port,
        myself: has("myself"),
        master: has("master"),
        failed: has("fail"),
        suspected: has("fail?"),
        handshake: has("handshake"),
        noaddr: has("noaddr"),
        master_id: (*master != "-").then(|| master.to_string()),
        config_epoch,
        connected: *link == "connected",
        slots: Vec::new(),
        open: Vec::new(),
    };
    for s in slots {
        if let Some(inner) = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            let (slot, migrating, other) = if let Some((a, b)) = inner.split_once("->-") {
                (a, true, b)
            } else if let Some((a, b)) = inner.split_once("-<-") {
                (a, false, b)
            } else {
                return Err(format!("open slot `{s}` is neither `->-` nor `-<-`"));
            };
            peer.open.push(OpenSlot {
                slot: slot_number(slot)?,
                peer: other.to_string(),
                migrating,
            });
        } else if let Some((a, b)) = s.split_once('-') {
            let (a, b) = (slot_number(a)?, slot_number(b)?);
            if a > b {
                return Err(format!("slot range `{s}` runs backwards"));
            }
            peer.slots.push((a, b));
        } else {
            let n = slot_number(s)?;
            peer.slots.push((n, n));
        }
    }
    Ok(peer)
}

fn slot_number(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(n) if n < SLOTS => Ok(n),
        _ => Err(format!("`{s}` is not a slot (0..{SLOTS})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004,shop-3.data.voodu slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383 [16383->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]
6ec23923021cf3ffec47632106199cb7f496ce01 :0@0 slave,fail,noaddr 67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 0 1426238316232 5 disconnected
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 17 [93-<-292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f]
";

    #[test]
    fn reads_every_kind_of_line() {
        let peers = parse_nodes(SAMPLE).unwrap();
        assert_eq!(peers.len(), 5);
        let r = &peers[0];
        assert!(!r.master && r.connected && !r.myself);
        assert_eq!(r.ip, "127.0.0.1");
        assert_eq!(r.port, 30004);
        assert_eq!(
            r.master_id.as_deref(),
            Some("e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca")
        );
        assert_eq!(peers[1].slots, [(5461, 10922)]);
        assert_eq!(peers[1].slot_count(), 5462);
        assert_eq!(
            peers[2].open,
            [OpenSlot {
                slot: 16383,
                peer: "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1".into(),
                migrating: true
            }]
        );
        let gone = &peers[3];
        assert!(gone.failed && gone.noaddr && !gone.connected && gone.ip.is_empty());
        let me = &peers[4];
        assert!(me.myself && me.master && me.master_id.is_none());
        assert_eq!(me.slots, [(0, 5460), (17, 17)]);
        assert!(!me.open[0].migrating);
        assert_eq!(me.config_epoch, 1);
    }

    #[test]
    fn shards_are_numbered_by_their_lowest_slot() {
        let peers = parse_nodes(SAMPLE).unwrap();
        let s = shards(&peers);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].master.id, "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca");
        assert_eq!(s[0].replicas.len(), 1);
        assert_eq!(s[1].master.slots, [(5461, 10922)]);
        assert_eq!(s[1].replicas.len(), 1, "a failed replica is still listed");
        assert_eq!(s[2].master.slots, [(10923, 16383)]);
        assert!(s[2].replicas.is_empty());
    }

    #[test]
    fn fail_question_is_a_suspicion_not_a_failure() {
        let p = parse_nodes("abc 10.0.0.1:6379@16379 master,fail? - 0 0 3 connected").unwrap();
        assert!(p[0].suspected && !p[0].failed);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [
            "abc",
            "xyz 1.2.3.4:1@2 master - 0 0 1 connected",
            "abc 1.2.3.4 master - 0 0 1 connected",
            "abc 1.2.3.4:99999@1 master - 0 0 1 connected",
            "abc 1.2.3.4:1@2 master - 0 0 x connected",
            "abc 1.2.3.4:1@2 master - 0 0 1 connected 16384",
            "abc 1.2.3.4:1@2 master - 0 0 1 connected 9-3",
            "abc 1.2.3.4:1@2 master - 0 0 1 connected [5-?-abc]",
        ] {
            assert!(parse_nodes(bad).is_err(), "{bad}");
        }
    }
}
