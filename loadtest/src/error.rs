//! What can stop a run once its options were accepted.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine, its WAL or the generator could not be set up.
    #[error("{0}")]
    Setup(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The server refused the flow or could not be reached.
    #[error("server: {0}")]
    Server(String),
    #[error("writing the report: {0}")]
    Report(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
