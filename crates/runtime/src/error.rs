//! The runtime's error type.

/// What went wrong running a pod.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A filesystem or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The pod's root could not be planned.
    #[error("pod {pod}: {source}")]
    Mounts {
        /// Pod name.
        pod: String,
        /// The cause.
        #[source]
        source: crate::mounts::PlanError,
    },
    /// The command's program is not installed on the host.
    #[error("pod {pod}: `{program}` is not installed on this host; install it (Debian: apt-get install {package})")]
    MissingProgram {
        /// Pod name.
        pod: String,
        /// The program.
        program: String,
        /// The Debian package that provides it.
        package: String,
    },
    /// The pod spec cannot run on this runtime.
    #[error("pod {pod}: {message}")]
    Invalid {
        /// Pod name.
        pod: String,
        /// What to fix.
        message: String,
    },
    /// An exec or stop took longer than allowed.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
}

impl RuntimeError {
    /// Wraps an IO error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// An IO error about a path.
    pub fn at(what: &str, path: &std::path::Path, source: std::io::Error) -> Self {
        Self::io(format!("{what} {}", path.display()), source)
    }
}
