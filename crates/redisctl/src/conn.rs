//! The connection layer under every client in this crate: opening an authenticated connection
//! to one address, sending commands through it, and the error type they all report.

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
/// connection yet. Shared by the node and sentinel clients and the sentinel watch.
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

/// An authenticated connection to `host:port` whose errors name that address; what the node,
/// sentinel and migration-source clients send their commands through.
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

/// The rotation's first and last steps on the `default` user, shared by data pods and
/// sentinels (both run ACLs).
#[derive(Clone, Copy)]
pub(crate) enum DefaultPassword<'a> {
    /// `ACL SETUSER default >pw`: accept `pw` too.
    Add(&'a str),
    /// `ACL SETUSER default <pw`: stop accepting `pw`.
    Remove(&'a str),
}

impl Conn {
    /// Changes the `default` user's passwords.
    pub(crate) async fn default_password(
        &mut self,
        change: DefaultPassword<'_>,
    ) -> Result<(), RedisError> {
        let rule = match change {
            DefaultPassword::Add(pw) => format!(">{pw}"),
            DefaultPassword::Remove(pw) => format!("<{pw}"),
        };
        let _: String = self
            .run(redis::cmd("ACL").arg("SETUSER").arg("default").arg(rule))
            .await?;
        Ok(())
    }
}
