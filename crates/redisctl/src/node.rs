//! A connection to one Redis instance and the commands vd sends it.

pub use crate::conn::RedisError;
use crate::conn::{Access, Conn, DefaultPassword};
use crate::info::{Info, Replication, Role};
use std::time::Duration;

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

    /// Connects as `access` says (password, TLS) within `timeout`.
    pub async fn connect_with(
        host: &str,
        port: u16,
        access: Access<'_>,
        timeout: Duration,
    ) -> Result<Node, RedisError> {
        Ok(Node {
            c: Conn::open_with(host, port, access, timeout).await?,
        })
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        &self.c.addr
    }

    pub(crate) async fn run<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
    ) -> Result<T, RedisError> {
        self.c.run(cmd).await
    }

    pub(crate) async fn pipe<T: redis::FromRedisValue>(
        &mut self,
        p: &redis::Pipeline,
    ) -> Result<T, RedisError> {
        self.c.pipe(p).await
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
        self.c.default_password(DefaultPassword::Add(pw)).await
    }

    /// `ACL SETUSER default <pw`: the default user stops accepting `pw` (rotation, last step).
    pub async fn remove_default_password(&mut self, pw: &str) -> Result<(), RedisError> {
        self.c.default_password(DefaultPassword::Remove(pw)).await
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
