//! The engine's one error type.

/// What can go wrong in the engine's public operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flow or its inputs are invalid.
    #[error(transparent)]
    Flow(#[from] crate::flow::Error),
    /// A template does not compile or render.
    #[error(transparent)]
    Expression(#[from] crate::expression::Error),
    /// The journal's WAL failed.
    #[error(transparent)]
    Wal(#[from] peregrine_wal::Error),
    /// A record read back from the journal cannot be read.
    #[error("a journal record: {0}")]
    Journal(#[from] crate::journal::JournalError),
    /// The engine did not take the request (a full inbox, a stop).
    #[error(transparent)]
    Refused(#[from] crate::executor::Refusal),
    /// Starting threads or reading the data folder failed.
    #[error("engine I/O: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
