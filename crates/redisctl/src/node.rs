//! A connection to one Redis instance and the commands vd sends it.

use crate::info::{Info, Replication, Role};
use std::time::Duration;

/// Why a Redis operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// Could not connect in time.
    #[error("cannot reach redis at {addr}: {reason}")]
    Unreachable {
        /// host:port.
        addr: String,
        /// Cause.
        reason: String,
    },
    /// The server answered with an error.
    #[error("redis at {addr}: {source}")]
    Command {
        /// host:port.
        addr: String,
        /// Cause.
        #[source]
        source: redis::RedisError,
    },
    /// An operation did not complete in time.
    #[error("{0}")]
    Timeout(String),
    /// The cluster is not in a state that allows the operation.
    #[error("{0}")]
    State(String),
}

/// A client for `host:port` that authenticates as `default` when `password` is set. Opens no
/// connection yet. Shared by [`Node`], [`crate::sentinel::Sentinel`] and the sentinel watch.
pub(crate) fn client(
    host: &str,
    port: u16,
    password: Option<&str>,
) -> Result<redis::Client, RedisError> {
    let unreachable = |reason: String| RedisError::Unreachable {
        addr: format!("{host}:{port}"),
        reason,
    };
    use redis::IntoConnectionInfo;
    let info = redis::ConnectionAddr::Tcp(host.to_string(), port)
        .into_connection_info()
        .map_err(|e| unreachable(e.to_string()))?;
    let info = match password {
        Some(p) => info.set_redis_settings(redis::RedisConnectionInfo::default().set_password(p)),
        None => info,
    };
    redis::Client::open(info).map_err(|e| unreachable(e.to_string()))
}

/// An authenticated connection to `host:port` whose errors name that address; what [`Node`]
/// and [`crate::sentinel::Sentinel`] send their commands through.
pub(crate) struct Conn {
    pub(crate) addr: String,
    conn: redis::aio::MultiplexedConnection,
}

impl Conn {
    /// Connects and authenticates within `timeout`; every later reply must also arrive within it.
    pub(crate) async fn open(
        host: &str,
        port: u16,
        password: Option<&str>,
        timeout: Duration,
    ) -> Result<Conn, RedisError> {
        let addr = format!("{host}:{port}");
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let conn = client(host, port, password)?
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| RedisError::Unreachable {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        Ok(Conn { addr, conn })
    }

    /// Sends a pipeline; the replies come back in order.
    pub(crate) async fn pipe<T: redis::FromRedisValue>(
        &mut self,
        p: &redis::Pipeline,
    ) -> Result<T, RedisError> {
        p.query_async(&mut self.conn)
            .await
            .map_err(|source| RedisError::Command {
                addr: self.addr.clone(),
                source,
            })
    }

    /// Sends one command.
    pub(crate) async fn run<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
    ) -> Result<T, RedisError> {
        cmd.query_async(&mut self.conn)
            .await
            .map_err(|source| RedisError::Command {
                addr: self.addr.clone(),
                source,
            })
    }
}

/// One Redis instance, reachable from the controller at `host:port`.
pub struct Node {
    c: Conn,
}

impl Node {
    /// Connects and authenticates (as `default`) within `timeout`.
    pub async fn connect(
        host: &str,
        port: u16,
        password: Option<&str>,
        timeout: Duration,
    ) -> Result<Node, RedisError> {
        Ok(Node {
            c: Conn::open(host, port, password, timeout).await?,
        })
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        &self.c.addr
    }

    async fn run<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T, RedisError> {
        self.c.run(cmd).await
    }

    /// `PING`.
    pub async fn ping(&mut self) -> Result<(), RedisError> {
        let _: String = self.run(&redis::cmd("PING")).await?;
        Ok(())
    }

    /// `INFO [section]`.
    pub async fn info(&mut self, section: Option<&str>) -> Result<Info, RedisError> {
        let mut c = redis::cmd("INFO");
        if let Some(s) = section {
            c.arg(s);
        }
        let text: String = self.run(&c).await?;
        Ok(Info::parse(&text))
    }

    /// `INFO replication` plus the loading flag.
    pub async fn replication(&mut self) -> Result<Replication, RedisError> {
        let text: String = self
            .run(redis::cmd("INFO").arg("replication").arg("persistence"))
            .await?;
        Ok(Info::parse(&text).replication())
    }

    /// `ROLE`, reduced to what routing needs: the role, and for a replica whether its link to
    /// the master is up (`connected`).
    pub async fn role(&mut self) -> Result<(Role, bool), RedisError> {
        let v: redis::Value = self.run(&redis::cmd("ROLE")).await?;
        let parts = match v {
            redis::Value::Array(p) => p,
            _ => Vec::new(),
        };
        let text = |v: Option<&redis::Value>| match v {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(redis::Value::SimpleString(s)) => s.clone(),
            _ => String::new(),
        };
        Ok(match text(parts.first()).as_str() {
            "master" => (Role::Master, true),
            "slave" => (Role::Replica, text(parts.get(3)) == "connected"),
            other => {
                return Err(RedisError::State(format!(
                    "{} answered ROLE with `{other}`, not master or slave",
                    self.addr()
                )))
            }
        })
    }

    /// `REPLICAOF host port`.
    pub async fn replicaof(&mut self, host: &str, port: u16) -> Result<(), RedisError> {
        let _: String = self
            .run(redis::cmd("REPLICAOF").arg(host).arg(port))
            .await?;
        Ok(())
    }

    /// `REPLICAOF NO ONE`: become a master, keeping the old history as replid2.
    pub async fn promote(&mut self) -> Result<(), RedisError> {
        let _: String = self
            .run(redis::cmd("REPLICAOF").arg("NO").arg("ONE"))
            .await?;
        Ok(())
    }

    /// `CLIENT PAUSE ms WRITE`: write commands of clients wait; replication and reads go on.
    pub async fn pause_writes(&mut self, for_ms: u64) -> Result<(), RedisError> {
        let _: String = self
            .run(redis::cmd("CLIENT").arg("PAUSE").arg(for_ms).arg("WRITE"))
            .await?;
        Ok(())
    }

    /// `CLIENT UNPAUSE`.
    pub async fn unpause(&mut self) -> Result<(), RedisError> {
        let _: String = self.run(redis::cmd("CLIENT").arg("UNPAUSE")).await?;
        Ok(())
    }

    /// `CONFIG SET key value`.
    pub async fn config_set(&mut self, key: &str, value: &str) -> Result<(), RedisError> {
        let _: String = self
            .run(redis::cmd("CONFIG").arg("SET").arg(key).arg(value))
            .await?;
        Ok(())
    }

    /// `CONFIG GET key`: its value, `None` when the server has no such setting.
    pub async fn config_get(&mut self, key: &str) -> Result<Option<String>, RedisError> {
        let v: std::collections::HashMap<String, String> =
            self.run(redis::cmd("CONFIG").arg("GET").arg(key)).await?;
        Ok(v.get(key).cloned())
    }

    /// `ACL SETUSER default >pw`: the default user accepts `pw` too (rotation, step one).
    pub async fn add_default_password(&mut self, pw: &str) -> Result<(), RedisError> {
        let _: String = self
            .run(
                redis::cmd("ACL")
                    .arg("SETUSER")
                    .arg("default")
                    .arg(format!(">{pw}")),
            )
            .await?;
        Ok(())
    }

    /// `ACL SETUSER default <pw`: the default user stops accepting `pw` (rotation, last step).
    pub async fn remove_default_password(&mut self, pw: &str) -> Result<(), RedisError> {
        let _: String = self
            .run(
                redis::cmd("ACL")
                    .arg("SETUSER")
                    .arg("default")
                    .arg(format!("<{pw}")),
            )
            .await?;
        Ok(())
    }

    /// `CLIENT KILL TYPE normal`: drops client connections (after a demotion).
    pub async fn kill_normal_clients(&mut self) -> Result<(), RedisError> {
        let _: i64 = self
            .run(
                redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("TYPE")
                    .arg("normal")
                    .arg("SKIPME")
                    .arg("yes"),
            )
            .await?;
        Ok(())
    }
}
