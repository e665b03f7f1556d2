//! Talking to redis-sentinel: querying what a sentinel knows about a monitored master, steering
//! it (forced failover, reset, settings) and following its failover announcements: the
//! promotion of a replica as it is ordered, and `+switch-master` once the failover is done.
//!
//! Replies are read as [`redis::Value`] and converted here rather than through typed
//! `FromRedisValue` targets, because the shape of the `SENTINEL MASTER/REPLICAS/SENTINELS`
//! replies depends on the protocol: RESP2 sends a flat `field value field value ...` array,
//! RESP3 a map. Both are accepted so a later protocol switch does not break parsing.

use crate::conn::{client_with, Access, Conn, DefaultPassword, RedisError};
use futures_util::StreamExt;
use redis::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// The pub/sub channel on which a sentinel announces a completed failover.
const SWITCH_MASTER: &str = "+switch-master";
/// The channel on which the sentinel leading a failover announces that it has sent
/// `REPLICAOF NO ONE` to the replica it chose, about a second before `+switch-master`.
const PROMOTING: &str = "+failover-state-wait-promotion";

/// How often the watch checks that the sentinel still answers. A peer that vanished without
/// closing the TCP connection (host power loss, partition) sends nothing, and a subscription
/// only ever reads, so without this the watch would wait forever instead of letting the caller
/// reconnect to a live sentinel.
const KEEPALIVE: Duration = Duration::from_secs(5);

/// A connection to one redis-sentinel.
pub struct Sentinel {
    c: Conn,
}

impl Sentinel {
    /// Connects and authenticates (as `default`) within `timeout`; every reply must also arrive
    /// within `timeout`.
    pub async fn connect(
        host: &str,
        port: u16,
        password: Option<&str>,
        timeout: Duration,
    ) -> Result<Sentinel, RedisError> {
        Sentinel::connect_with(host, port, Access::plain(password), timeout).await
    }

    /// [`Sentinel::connect`], over TLS when `access` says so.
    pub async fn connect_with(
        host: &str,
        port: u16,
        access: Access<'_>,
        timeout: Duration,
    ) -> Result<Sentinel, RedisError> {
        Ok(Sentinel {
            c: Conn::open_with(host, port, access, timeout).await?,
        })
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        &self.c.addr
    }

    async fn run<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T, RedisError> {
        self.c.run(cmd).await
    }

    /// A reply that has the wrong shape, as an error naming this sentinel.
    fn unexpected(&self, what: &str, reply: &Value) -> RedisError {
        RedisError::Command {
            addr: self.c.addr.clone(),
            source: redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "unexpected sentinel reply",
                format!("{what}: {reply:?}"),
            )),
        }
    }

    /// `PING`.
    pub async fn ping(&mut self) -> Result<(), RedisError> {
        let _: String = self.run(&redis::cmd("PING")).await?;
        Ok(())
    }

    /// `SENTINEL GET-MASTER-ADDR-BY-NAME`; `None` when the sentinel does not know the master.
    ///
    /// This is the address the sentinel currently considers the master, which after a failover
    /// is the promoted replica even before that replica has finished its role change.
    pub async fn master_addr(&mut self, master: &str) -> Result<Option<(String, u16)>, RedisError> {
        let reply: Value = self
            .run(
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(master),
            )
            .await?;
        match &reply {
            // An unknown master is a null reply (a null array in RESP2, null in RESP3), not an
            // error.
            Value::Nil => Ok(None),
            Value::Array(items) => match items.as_slice() {
                [host, port] => {
                    let host = text(host);
                    let port = text(port).and_then(|p| p.parse::<u16>().ok());
                    match (host, port) {
                        (Some(h), Some(p)) => Ok(Some((h, p))),
                        _ => Err(self.unexpected("GET-MASTER-ADDR-BY-NAME", &reply)),
                    }
                }
                _ => Err(self.unexpected("GET-MASTER-ADDR-BY-NAME", &reply)),
            },
            _ => Err(self.unexpected("GET-MASTER-ADDR-BY-NAME", &reply)),
        }
    }

    /// `SENTINEL MASTER <name>` as field -> value (`flags`, `num-other-sentinels`, `quorum`,
    /// `config-epoch` ...).
    pub async fn master(&mut self, master: &str) -> Result<BTreeMap<String, String>, RedisError> {
        let reply: Value = self
            .run(redis::cmd("SENTINEL").arg("MASTER").arg(master))
            .await?;
        field_map(&reply).ok_or_else(|| self.unexpected("MASTER", &reply))
    }

    /// `SENTINEL REPLICAS <name>`, each replica as field -> value (`ip`, `port`, `flags`,
    /// `master-link-status`, `slave-repl-offset` ...).
    ///
    /// Falls back to `SENTINEL SLAVES` when the sentinel does not know the `REPLICAS`
    /// subcommand (sentinels before 5.0).
    pub async fn replicas(
        &mut self,
        master: &str,
    ) -> Result<Vec<BTreeMap<String, String>>, RedisError> {
        let reply: Value = match self
            .run(redis::cmd("SENTINEL").arg("REPLICAS").arg(master))
            .await
        {
            Ok(v) => v,
            Err(RedisError::Command { source, .. }) if is_unknown_subcommand(&source) => {
                self.run(redis::cmd("SENTINEL").arg("SLAVES").arg(master))
                    .await?
            }
            Err(e) => return Err(e),
        };
        field_maps(&reply).ok_or_else(|| self.unexpected("REPLICAS", &reply))
    }

    /// `SENTINEL SENTINELS <name>`: the *other* sentinels monitoring the master (this one is not
    /// listed), each as field -> value (`ip`, `port`, `runid`, `flags` ...).
    pub async fn sentinels(
        &mut self,
        master: &str,
    ) -> Result<Vec<BTreeMap<String, String>>, RedisError> {
        let reply: Value = self
            .run(redis::cmd("SENTINEL").arg("SENTINELS").arg(master))
            .await?;
        field_maps(&reply).ok_or_else(|| self.unexpected("SENTINELS", &reply))
    }

    /// `SENTINEL CKQUORUM <name>`: `Ok` with the sentinel's message when enough sentinels are
    /// reachable to authorize a failover, otherwise `Err(RedisError::State)` with the sentinel's
    /// explanation (`NOQUORUM ...`, or `ERR No such master with that name`).
    pub async fn ckquorum(&mut self, master: &str) -> Result<String, RedisError> {
        match self
            .run(redis::cmd("SENTINEL").arg("CKQUORUM").arg(master))
            .await
        {
            Ok(msg) => Ok(msg),
            // A refusal is an answer about the deployment, not a failure to talk to the
            // sentinel, so it is reported as a state; transport failures stay what they are.
            Err(RedisError::Command { addr, source }) => match server_message(&source) {
                Some(msg) => Err(RedisError::State(msg)),
                None => Err(RedisError::Command { addr, source }),
            },
            Err(e) => Err(e),
        }
    }

    /// `SENTINEL FAILOVER <name>`: fails over now, as if the master were down, without asking
    /// the other sentinels for agreement. Returns once the sentinel accepted the request; the
    /// completed failover is announced as `+switch-master` (see [`watch_switch_master`]).
    pub async fn failover(&mut self, master: &str) -> Result<(), RedisError> {
        let _: Value = self
            .run(redis::cmd("SENTINEL").arg("FAILOVER").arg(master))
            .await?;
        Ok(())
    }

    /// `SENTINEL RESET <pattern>`: forgets the replicas and sentinels of every master whose name
    /// matches the glob `pattern` (they are rediscovered); returns how many masters matched.
    pub async fn reset(&mut self, pattern: &str) -> Result<u64, RedisError> {
        self.run(redis::cmd("SENTINEL").arg("RESET").arg(pattern))
            .await
    }

    /// `SENTINEL REMOVE <name>`: stops monitoring the master (and forgets its replicas and
    /// the other sentinels); the sentinel rewrites its config without it.
    pub async fn remove(&mut self, master: &str) -> Result<(), RedisError> {
        let _: Value = self
            .run(redis::cmd("SENTINEL").arg("REMOVE").arg(master))
            .await?;
        Ok(())
    }

    /// `SENTINEL MONITOR <name> <host> <port> <quorum>`: starts monitoring a master; its
    /// other settings (auth-pass, timings) are then given with [`Sentinel::set`].
    pub async fn monitor(
        &mut self,
        master: &str,
        host: &str,
        port: u16,
        quorum: u32,
    ) -> Result<(), RedisError> {
        let _: Value = self
            .run(
                redis::cmd("SENTINEL")
                    .arg("MONITOR")
                    .arg(master)
                    .arg(host)
                    .arg(port)
                    .arg(quorum),
            )
            .await?;
        Ok(())
    }

    /// `ACL SETUSER default >pw`: this sentinel accepts `pw` too (rotation, step one).
    pub async fn add_default_password(&mut self, pw: &str) -> Result<(), RedisError> {
        self.c.default_password(DefaultPassword::Add(pw)).await
    }

    /// `ACL SETUSER default <pw`: this sentinel stops accepting `pw` (rotation, last step).
    pub async fn remove_default_password(&mut self, pw: &str) -> Result<(), RedisError> {
        self.c.default_password(DefaultPassword::Remove(pw)).await
    }

    /// `SENTINEL CONFIG SET <option> <value>`: a sentinel-wide setting (not a master's), e.g.
    /// `sentinel-pass`, the password it sends to the other sentinels.
    pub async fn config_set(&mut self, option: &str, value: &str) -> Result<(), RedisError> {
        let _: Value = self
            .run(
                redis::cmd("SENTINEL")
                    .arg("CONFIG")
                    .arg("SET")
                    .arg(option)
                    .arg(value),
            )
            .await?;
        Ok(())
    }

    /// `SENTINEL SET <name> <option> <value>`.
    pub async fn set(&mut self, master: &str, option: &str, value: &str) -> Result<(), RedisError> {
        let _: Value = self
            .run(
                redis::cmd("SENTINEL")
                    .arg("SET")
                    .arg(master)
                    .arg(option)
                    .arg(value),
            )
            .await?;
        Ok(())
    }
}

/// A `+switch-master` event: `<master> <old-host> <old-port> <new-host> <new-port>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchMaster {
    /// The monitored master's name.
    pub master: String,
    /// The address of the master that was replaced.
    pub old_host: String,
    /// Its port.
    pub old_port: u16,
    /// The address of the promoted replica, now the master.
    pub new_host: String,
    /// Its port.
    pub new_port: u16,
}

/// Parses a `+switch-master` payload; `None` when malformed.
pub fn parse_switch_master(payload: &str) -> Option<SwitchMaster> {
    let mut parts = payload.split_whitespace();
    let master = parts.next()?.to_string();
    let old_host = parts.next()?.to_string();
    let old_port = parts.next()?.parse().ok()?;
    let new_host = parts.next()?.to_string();
    let new_port = parts.next()?.parse().ok()?;
    // Trailing words mean a format this parser does not know; guessing would misroute clients.
    if parts.next().is_some() {
        return None;
    }
    Some(SwitchMaster {
        master,
        old_host,
        old_port,
        new_host,
        new_port,
    })
}

/// A `+failover-state-wait-promotion` event: the leader of a failover has told this replica
/// to become the master. Its payload names the replica and, after `@`, the master it replaces:
/// `slave <host>:<port> <host> <port> @ <master> <old-host> <old-port>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// The monitored master's name.
    pub master: String,
    /// The address of the replica being promoted.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The address of the master it replaces.
    pub old_host: String,
    /// Its port.
    pub old_port: u16,
}

/// Parses a `+failover-state-wait-promotion` payload; `None` when malformed.
pub fn parse_promotion(payload: &str) -> Option<Promotion> {
    let words: Vec<&str> = payload.split_whitespace().collect();
    // The instance name (`host:port`) repeats the address; the address fields are what count.
    let ["slave", _name, host, port, "@", master, old_host, old_port] = words[..] else {
        return None;
    };
    Some(Promotion {
        master: master.to_string(),
        host: host.to_string(),
        port: port.parse().ok()?,
        old_host: old_host.to_string(),
        old_port: old_port.parse().ok()?,
    })
}

/// What a sentinel announces about a failover, in the order it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailoverEvent {
    /// A replica was told to become the master; the other replicas still follow the old one.
    Promoting(Promotion),
    /// The failover is done: the sentinel now names the new master.
    Switched(SwitchMaster),
}

impl FailoverEvent {
    /// The name of the monitored master the event is about.
    pub fn master(&self) -> &str {
        match self {
            FailoverEvent::Promoting(p) => &p.master,
            FailoverEvent::Switched(s) => &s.master,
        }
    }
}

/// Parses a message of one of the channels [`watch_failovers`] subscribes to; `None` for
/// another channel or a malformed payload.
pub fn parse_failover_event(channel: &str, payload: &str) -> Option<FailoverEvent> {
    match channel {
        SWITCH_MASTER => parse_switch_master(payload).map(FailoverEvent::Switched),
        PROMOTING => parse_promotion(payload).map(FailoverEvent::Promoting),
        _ => None,
    }
}

/// Subscribes to a sentinel's failover announcements (`+failover-state-wait-promotion` and
/// `+switch-master`) and forwards every event to `tx` until the connection drops or `tx` is
/// closed.
///
/// Connecting, authenticating and subscribing must complete within `timeout`; once subscribed
/// the sentinel is pinged every few seconds and must answer within `timeout`, so a silently
/// vanished sentinel is noticed. Returns `Ok(())` when `tx` is closed, `Err` when the connection
/// failed or dropped (the caller reconnects, possibly to another sentinel). Events announced
/// while not subscribed are lost: after reconnecting, ask [`Sentinel::master_addr`].
pub async fn watch_failovers(
    host: &str,
    port: u16,
    access: Access<'_>,
    timeout: Duration,
    tx: UnboundedSender<FailoverEvent>,
) -> Result<(), RedisError> {
    if tx.is_closed() {
        return Ok(());
    }
    let addr = format!("{host}:{port}");
    let client = client_with(host, port, access)?;
    // `Client::get_async_pubsub` takes no connection or response timeout (redis 1.x), so the
    // whole setup is bounded here.
    let subscribed = tokio::time::timeout(timeout, async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(SWITCH_MASTER).await?;
        pubsub.subscribe(PROMOTING).await?;
        Ok::<_, redis::RedisError>(pubsub.split())
    })
    .await;
    let (mut sink, mut stream) = match subscribed {
        Ok(Ok(split)) => split,
        Ok(Err(e)) => {
            return Err(RedisError::Unreachable {
                addr,
                reason: e.to_string(),
            })
        }
        Err(_) => {
            return Err(RedisError::Unreachable {
                addr,
                reason: format!("no subscription to its failover announcements within {timeout:?}"),
            })
        }
    };
    tracing::debug!(sentinel = %addr, "watching failover announcements");

    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; the subscription just proved the sentinel is alive.
    keepalive.tick().await;
    loop {
        tokio::select! {
            _ = tx.closed() => return Ok(()),
            msg = stream.next() => {
                // The stream ends when the library's connection task stops, i.e. the
                // connection closed or broke.
                let Some(msg) = msg else {
                    return Err(RedisError::Unreachable {
                        addr,
                        reason: "the subscription to its failover announcements closed".to_string(),
                    });
                };
                let channel = msg.get_channel_name().to_string();
                let payload: String = match msg.get_payload() {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(sentinel = %addr, channel, error = %e, "unreadable sentinel message ignored");
                        continue;
                    }
                };
                match parse_failover_event(&channel, &payload) {
                    Some(event) => {
                        if tx.send(event).is_err() {
                            return Ok(());
                        }
                    }
                    None => {
                        tracing::warn!(sentinel = %addr, channel, payload, "malformed sentinel message ignored");
                    }
                }
            }
            _ = keepalive.tick() => {
                // Messages arriving meanwhile are buffered by the library, not lost.
                match tokio::time::timeout(timeout, sink.ping::<Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(source)) => return Err(RedisError::Command { addr, source }),
                    Err(_) => {
                        return Err(RedisError::Timeout(format!(
                            "sentinel at {addr} did not answer PING within {timeout:?}"
                        )))
                    }
                }
            }
        }
    }
}

/// The text of a scalar reply element; `None` for aggregates and nulls.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Okay => Some("OK".to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Double(d) => Some(d.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// One field list as field -> value: a flat `field value ...` array (RESP2) or a map (RESP3).
/// `None` when the reply is neither. A dangling last field and pairs that are not two scalars
/// are dropped rather than failing the whole reply: the remaining fields are still accurate.
fn field_map(v: &Value) -> Option<BTreeMap<String, String>> {
    let pair = |k: &Value, v: &Value| Some((text(k)?, text(v)?));
    match v {
        Value::Array(items) => Some(
            items
                .chunks_exact(2)
                .filter_map(|kv| pair(&kv[0], &kv[1]))
                .collect(),
        ),
        Value::Map(pairs) => Some(pairs.iter().filter_map(|(k, v)| pair(k, v)).collect()),
        Value::Attribute { data, .. } => field_map(data),
        _ => None,
    }
}

/// A list of field lists (`SENTINEL REPLICAS/SENTINELS`); `None` when the reply or any entry is
/// not shaped like one, since silently dropping an entry would hide a replica or sentinel.
fn field_maps(v: &Value) -> Option<Vec<BTreeMap<String, String>>> {
    match v {
        Value::Array(items) | Value::Set(items) => items.iter().map(field_map).collect(),
        Value::Attribute { data, .. } => field_maps(data),
        _ => None,
    }
}

/// The error line a server sent (`CODE detail`), or `None` when the error did not come from the
/// server (I/O, timeout, parsing).
fn server_message(e: &redis::RedisError) -> Option<String> {
    let code = e.code()?;
    Some(match e.detail() {
        Some(d) => format!("{code} {d}"),
        None => code.to_string(),
    })
}

/// Whether the server rejected a subcommand it does not know. Sentinels phrase it differently
/// across versions (`Unknown sentinel subcommand 'x'` before 7.0, `unknown subcommand 'x'.
/// Try SENTINEL HELP.` since), so both words are looked for.
fn is_unknown_subcommand(e: &redis::RedisError) -> bool {
    server_message(e).is_some_and(|m| {
        let m = m.to_ascii_lowercase();
        m.contains("unknown") && m.contains("subcommand")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn switch_master_with_ips() {
        assert_eq!(
            parse_switch_master("voodu-master 127.0.0.1 6379 127.0.0.2 6380"),
            Some(SwitchMaster {
                master: "voodu-master".into(),
                old_host: "127.0.0.1".into(),
                old_port: 6379,
                new_host: "127.0.0.2".into(),
                new_port: 6380,
            })
        );
    }

    #[test]
    fn switch_master_with_hostnames() {
        let e = parse_switch_master("cache cache-0.data.voodu 6379 cache-1.data.voodu 6379")
            .expect("valid payload");
        assert_eq!(e.master, "cache");
        assert_eq!(e.old_host, "cache-0.data.voodu");
        assert_eq!(e.new_host, "cache-1.data.voodu");
        assert_eq!((e.old_port, e.new_port), (6379, 6379));
    }

    #[test]
    fn switch_master_malformed() {
        for p in [
            "",
            "   ",
            "voodu-master",
            "voodu-master 127.0.0.1 6379 127.0.0.2",
            "voodu-master 127.0.0.1 6379 127.0.0.2 6380 extra",
            "voodu-master 127.0.0.1 port 127.0.0.2 6380",
        ] {
            assert_eq!(parse_switch_master(p), None, "{p:?}");
        }
    }

    #[test]
    fn switch_master_bad_port() {
        for p in [
            "m 127.0.0.1 6379 127.0.0.2 65536",
            "m 127.0.0.1 -1 127.0.0.2 6380",
            "m 127.0.0.1 6379 127.0.0.2 63x9",
            "m 127.0.0.1 99999999999999999999 127.0.0.2 6380",
        ] {
            assert_eq!(parse_switch_master(p), None, "{p:?}");
        }
    }

    #[test]
    fn promotion_with_ips_and_hostnames() {
        let payload = "slave 10.0.0.3:6379 10.0.0.3 6379 @ voodu-master 10.0.0.2 6379";
        let p = Promotion {
            master: "voodu-master".into(),
            host: "10.0.0.3".into(),
            port: 6379,
            old_host: "10.0.0.2".into(),
            old_port: 6379,
        };
        assert_eq!(parse_promotion(payload), Some(p.clone()));
        assert_eq!(
            parse_failover_event(PROMOTING, payload),
            Some(FailoverEvent::Promoting(p))
        );
        let e = parse_promotion(
            "slave cache-1.data.voodu:6380 cache-1.data.voodu 6380 @ m cache-0.data.voodu 6381",
        )
        .expect("valid payload");
        assert_eq!((e.host.as_str(), e.port), ("cache-1.data.voodu", 6380));
        assert_eq!(
            (e.old_host.as_str(), e.old_port),
            ("cache-0.data.voodu", 6381)
        );
        assert_eq!(e.master, "m");
    }

    #[test]
    fn promotion_malformed() {
        for p in [
            "",
            "slave",
            // A master instance has no `@` part; only a replica is ever promoted.
            "master voodu-master 10.0.0.2 6379",
            "slave 10.0.0.3:6379 10.0.0.3 6379 @ voodu-master 10.0.0.2",
            "slave 10.0.0.3:6379 10.0.0.3 6379 voodu-master 10.0.0.2 6379",
            "slave 10.0.0.3:6379 10.0.0.3 6379 @ voodu-master 10.0.0.2 6379 extra",
            "slave 10.0.0.3:6379 10.0.0.3 port @ voodu-master 10.0.0.2 6379",
            "slave 10.0.0.3:6379 10.0.0.3 6379 @ voodu-master 10.0.0.2 65536",
            "sentinel 10.0.0.3:26379 10.0.0.3 26379 @ voodu-master 10.0.0.2 6379",
        ] {
            assert_eq!(parse_promotion(p), None, "{p:?}");
        }
    }

    #[test]
    fn events_by_channel() {
        let sw = "voodu-master 127.0.0.1 6379 127.0.0.2 6380";
        assert!(matches!(
            parse_failover_event(SWITCH_MASTER, sw),
            Some(FailoverEvent::Switched(s)) if s.master == "voodu-master"
        ));
        // The same text on a channel the watch does not read is not an event.
        assert_eq!(parse_failover_event("+sdown", sw), None);
        assert_eq!(parse_failover_event(PROMOTING, sw), None);
    }

    #[test]
    fn resp2_field_list() {
        let v = Value::Array(vec![
            bulk("name"),
            bulk("voodu-master"),
            bulk("flags"),
            bulk("master"),
            bulk("quorum"),
            bulk("2"),
        ]);
        let m = field_map(&v).expect("a field list");
        assert_eq!(m.len(), 3);
        assert_eq!(m["flags"], "master");
        assert_eq!(m["quorum"], "2");
    }

    #[test]
    fn resp3_field_map() {
        let v = Value::Map(vec![
            (bulk("ip"), bulk("127.0.0.1")),
            (bulk("port"), Value::Int(6379)),
        ]);
        let m = field_map(&v).expect("a field map");
        assert_eq!(m["ip"], "127.0.0.1");
        assert_eq!(m["port"], "6379");
    }

    #[test]
    fn odd_and_malformed_field_lists_do_not_panic() {
        // A dangling field is dropped.
        let m = field_map(&Value::Array(vec![bulk("a"), bulk("1"), bulk("b")])).expect("list");
        assert_eq!(m.len(), 1);
        assert_eq!(m["a"], "1");
        // A single element, an empty list.
        assert!(field_map(&Value::Array(vec![bulk("a")]))
            .expect("list")
            .is_empty());
        assert!(field_map(&Value::Array(vec![])).expect("list").is_empty());
        // Non-scalar pairs are dropped.
        let m = field_map(&Value::Array(vec![
            Value::Array(vec![]),
            bulk("x"),
            bulk("k"),
            Value::Nil,
            bulk("ok"),
            bulk("yes"),
        ]))
        .expect("list");
        assert_eq!(m.len(), 1);
        assert_eq!(m["ok"], "yes");
        // Not a field list at all.
        assert_eq!(field_map(&Value::Nil), None);
        assert_eq!(field_map(&bulk("flags")), None);
    }

    #[test]
    fn lists_of_field_lists() {
        let v = Value::Array(vec![
            Value::Array(vec![bulk("ip"), bulk("a"), bulk("port")]),
            Value::Map(vec![(bulk("ip"), bulk("b"))]),
        ]);
        let l = field_maps(&v).expect("entries");
        assert_eq!(l.len(), 2);
        assert_eq!(l[0]["ip"], "a");
        assert_eq!(l[1]["ip"], "b");
        assert_eq!(field_maps(&Value::Array(vec![])), Some(vec![]));
        // An entry that is not a field list fails the whole reply instead of hiding it.
        assert_eq!(field_maps(&Value::Array(vec![bulk("x")])), None);
        assert_eq!(field_maps(&Value::Nil), None);
    }

    /// The error a server reply line turns into.
    fn server_error(line: &str) -> redis::RedisError {
        match redis::parse_redis_value(format!("{line}\r\n").as_bytes())
            .and_then(Value::extract_error)
        {
            Err(e) => e,
            Ok(v) => panic!("{line:?} parsed as {v:?}, not an error"),
        }
    }

    #[test]
    fn server_errors_are_recognised() {
        let e = server_error("-NOQUORUM 1 usable Sentinels. Not enough available Sentinels");
        assert_eq!(
            server_message(&e).as_deref(),
            Some("NOQUORUM 1 usable Sentinels. Not enough available Sentinels")
        );
        assert!(is_unknown_subcommand(&server_error(
            "-ERR unknown subcommand 'replicas'. Try SENTINEL HELP."
        )));
        assert!(is_unknown_subcommand(&server_error(
            "-ERR Unknown sentinel subcommand 'replicas'"
        )));
        assert!(!is_unknown_subcommand(&server_error(
            "-ERR No such master with that name"
        )));

        let unknown: redis::RedisError = redis::RedisError::from((
            redis::ErrorKind::Client,
            "client side",
            "unknown subcommand".to_string(),
        ));
        // Not sent by a server: neither a server message nor an unknown-subcommand rejection.
        assert_eq!(server_message(&unknown), None);
        assert!(!is_unknown_subcommand(&unknown));
    }
}
