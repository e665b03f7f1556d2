//! The CLI's errors, rendered by miette.

use miette::Diagnostic;
use std::path::PathBuf;

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum CliError {
    /// No server answers on the socket.
    #[error("no vd server is running on {}", socket.display())]
    #[diagnostic(help(
        "start one with `vd server` (or `vd up -f FILE`), or point --root / VD_ROOT at its root"
    ))]
    NoServer {
        /// The socket tried.
        socket: PathBuf,
    },
    /// The server refused or failed a request.
    #[error("{message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// What it said.
        message: String,
        /// How to fix it.
        #[help]
        help: Option<String>,
        /// Field-level problems.
        problems: Vec<vd_server::types::Problem>,
    },
    /// Manifest errors.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Manifest(#[from] vd_manifest::Diagnostics),
    /// Bad arguments.
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
        /// How to fix it.
        #[help]
        help: Option<String>,
    },
    /// A pod failed while waiting for readiness.
    #[error("{0}")]
    Failed(String),
    /// A job `vd run` waited for failed: the CLI exits with the job's own code.
    #[error("{message}")]
    JobFailed {
        /// How it ended.
        message: String,
        /// The process exit code to pass on (1-255).
        code: i32,
    },
    /// The operation did its part and printed its report, but something it waited for did not
    /// follow in time: the exit status says the result is not whole yet.
    #[error("{message}")]
    Incomplete {
        /// What is not done.
        message: String,
        /// What to watch or do.
        #[help]
        help: Option<String>,
    },
    /// Local IO.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The embedded server failed.
    #[error(transparent)]
    Server(#[from] vd_server::ServerError),
}

impl CliError {
    /// A usage error with a hint.
    pub fn usage(message: impl Into<String>, help: impl Into<String>) -> Self {
        Self::Usage {
            message: message.into(),
            help: Some(help.into()),
        }
    }

    /// The process exit code for this error: a failed job's own, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::JobFailed { code, .. } => *code,
            _ => 1,
        }
    }

    /// An IO error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
