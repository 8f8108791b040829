//! The flow module's one error type.

use std::fmt;

/// One problem found in a flow: what, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where in the flow, e.g. `tasks[2].tasks[0].type`; empty for the root.
    pub path: String,
    /// 1-based; 0 when unknown.
    pub line: u32,
    /// 1-based; 0 when unknown.
    pub column: u32,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(flow)"
        } else {
            &self.path
        };
        write!(
            f,
            "{path} at {}:{}: {}",
            self.line, self.column, self.message
        )
    }
}

/// One input that does not fit its declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputProblem {
    /// The input's id.
    pub id: String,
    /// The declared type (`INT`, `SELECT`...); `None` when the input is missing.
    pub expected: Option<&'static str>,
    pub message: String,
}

impl fmt::Display for InputProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.expected {
            Some(t) => write!(f, "input `{}` ({t}): {}", self.id, self.message),
            None => write!(f, "input `{}`: {}", self.id, self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The flow YAML is invalid; every problem found, in source order.
    #[error("invalid flow: {}", join(.0))]
    Invalid(Vec<Problem>),
    /// Execution inputs that do not fit the flow's declarations.
    #[error("invalid inputs: {}", join(.0))]
    Inputs(Vec<InputProblem>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
