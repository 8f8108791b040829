//! The compiled form of a template: nodes and expressions.

use std::sync::Arc;

use serde_json::Value;

use super::builtins::{Filter, Function, Test};
use super::jq::JqProgram;

/// Byte offset into the template source.
pub(crate) type Pos = usize;

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(Box<str>),
    Print(Expr),
    If {
        branches: Vec<(Expr, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
    For {
        var: Box<str>,
        iterable: Expr,
        body: Vec<Node>,
        otherwise: Vec<Node>,
        pos: Pos,
    },
    Set {
        var: Box<str>,
        value: Expr,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Expr {
    pub kind: ExprKind,
    pub pos: Pos,
    /// Height of this expression tree, bounded at compile time so that
    /// evaluating (and dropping) it cannot overflow the stack.
    pub depth: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Not,
    Neg,
    Plus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Or,
    And,
    Contains,
    In,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Concat,
    Range,
}

/// One step of an attribute chain: `.name` or `[expr]`.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Key(Box<str>, Pos),
    Index(Expr),
}

#[derive(Debug, Clone)]
pub(crate) enum ExprKind {
    Literal(Value),
    /// A variable read, possibly followed by attribute steps: `a.b[c].d`.
    Path {
        root: Box<str>,
        steps: Vec<Step>,
    },
    /// Attribute steps applied to any other expression: `(x ?? y).z`.
    Access {
        base: Box<Expr>,
        steps: Vec<Step>,
    },
    /// `a.b(...)`: Java method calls, which Peregrine does not run.
    Method {
        name: Box<str>,
    },
    List(Vec<Expr>),
    Map(Vec<(Expr, Expr)>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `a ?? b` (`undefined_only == false`) and `a ??? b`.
    Coalesce {
        left: Box<Expr>,
        right: Box<Expr>,
        undefined_only: bool,
    },
    Ternary(Box<Expr>, Box<Expr>, Box<Expr>),
    Filter {
        input: Box<Expr>,
        filter: Filter,
        args: Args,
    },
    Test {
        input: Box<Expr>,
        test: Test,
        negated: bool,
        args: Args,
    },
    Call {
        function: Function,
        args: Args,
    },
    /// A double-quoted string with interpolations.
    Interpolation(Vec<Expr>),
}

/// Arguments bound to a builtin's parameter slots at compile time.
#[derive(Debug, Clone, Default)]
pub(crate) struct Args {
    /// One slot per declared parameter; `None` when not given.
    pub slots: Vec<Option<Expr>>,
    /// Extra positional arguments for variadic builtins (`max`, `min`).
    pub rest: Vec<Expr>,
    /// A jq program compiled once because its argument is a literal.
    pub jq: Option<Arc<JqProgram>>,
}
