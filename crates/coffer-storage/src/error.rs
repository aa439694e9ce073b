use thiserror::Error;

/// What went wrong below the barrier.
#[derive(Debug, Error)]
pub enum StorageError {
    /// The embedded file store failed.
    #[error("storage (file {path}): {message}")]
    File { path: String, message: String },
    /// PostgreSQL failed or could not be reached.
    #[error("storage (postgresql): {0}")]
    Postgres(String),
    /// The backend's configuration is unusable.
    #[error("storage config: {0}")]
    Config(String),
    /// This node is not the active node of its cluster (HA), or stopped
    /// being it: the write was not made.
    #[error("storage: this node is not the active node; the write was refused (fenced)")]
    Fenced,
    /// A blocking task could not run to completion.
    #[error("storage: background task failed: {0}")]
    Task(String),
}
