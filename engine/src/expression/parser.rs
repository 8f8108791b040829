//! Builds the AST: blocks from segments, expressions by precedence climbing
//! with Pebble's operator table.
//!
//! | precedence | operators |
//! |---|---|
//! | 500 | unary `not`, `-`, `+` (bind to the operand only) |
//! | 120 | `..`, `??`, `???` |
//! | 110 | `~` |
//! | 100 | `\|` (filter) |
//! | 60 | `*`, `/`, `%` |
//! | 40 | `+`, `-` |
//! | 30 | `==`, `equals`, `!=`, `<`, `>`, `<=`, `>=` |
//! | 20 | `is`, `is not`, `contains`, `in` |
//! | 15 | `and` |
//! | 10 | `or` |
//! | 0 | `a ? b : c` (only at the top of an expression) |
//!
//! All binary operators are left-associative.

use std::sync::Arc;

use serde_json::Value;

use super::ast::{Args, BinaryOp, Expr, ExprKind, Node, Pos, Step, UnaryOp};
use super::builtins::{Filter, Function, Test};
use super::jq::JqProgram;
use super::lexer::{self, LexResult, Part, Segment, Sym, SyntaxError, Tok, Token};

/// Deepest expression tree accepted.
const MAX_EXPR_DEPTH: u16 = 100;
/// Deepest recursion of the expression parser (parentheses, unary
/// operators, literals inside literals).
const MAX_NESTING: usize = 48;
/// Deepest nesting of `{% if %}` / `{% for %}` blocks accepted.
const MAX_BLOCK_DEPTH: usize = 64;

fn fail<T>(pos: Pos, message: impl Into<String>) -> LexResult<T> {
    Err(SyntaxError {
        pos,
        message: message.into(),
    })
}

pub(crate) fn parse_template(source: &str) -> LexResult<Vec<Node>> {
    let segments = lexer::segments(source)?;
    let mut parser = BlockParser {
        segments,
        i: 0,
        end: source.len(),
    };
    let (nodes, end) = parser.body(0, &[])?;
    if let Some((name, pos, _)) = end {
        return fail(pos, format!("Unexpected tag \"{name}\""));
    }
    Ok(nodes)
}

/// Parses one standalone expression (no delimiters), for tests and tools.
#[cfg(test)]
pub(crate) fn parse_expression_tokens(tokens: &[Token], end: Pos) -> LexResult<Expr> {
    let mut p = ExprParser::new(tokens, end);
    let e = p.expression(0)?;
    p.finish()?;
    Ok(e)
}

type Terminator = (String, Pos, Vec<Token>);

struct BlockParser {
    segments: Vec<Segment>,
    i: usize,
    end: Pos,
}

impl BlockParser {
    /// Parses nodes until a tag named in `ends` (returned) or the end.
    fn body(&mut self, depth: usize, ends: &[&str]) -> LexResult<(Vec<Node>, Option<Terminator>)> {
        let mut nodes = Vec::new();
        while self.i < self.segments.len() {
            let segment =
                std::mem::replace(&mut self.segments[self.i], Segment::Text(String::new()));
            self.i += 1;
            match segment {
                Segment::Text(text) => nodes.push(Node::Text(text.into())),
                Segment::Print { tokens, pos } => {
                    let end = self.segment_end(pos);
                    if tokens.is_empty() {
                        return fail(pos, "Empty expression");
                    }
                    let mut p = ExprParser::new(&tokens, end);
                    let e = p.expression(0)?;
                    p.finish()?;
                    nodes.push(Node::Print(e));
                }
                Segment::Tag { tokens, pos } => {
                    let Some(Token {
                        tok: Tok::Name(name),
                        ..
                    }) = tokens.first()
                    else {
                        return fail(pos, "A tag must start with its name");
                    };
                    let name = name.to_string();
                    if ends.contains(&name.as_str()) {
                        return Ok((nodes, Some((name, pos, tokens))));
                    }
                    let node = self.tag(depth, &name, pos, &tokens)?;
                    if let Some(node) = node {
                        nodes.push(node);
                    }
                }
            }
        }
        Ok((nodes, None))
    }

    fn segment_end(&self, pos: Pos) -> Pos {
        // Errors at the end of a tag point at the tag's start when nothing better exists.
        pos.min(self.end)
    }

    fn tag(
        &mut self,
        depth: usize,
        name: &str,
        pos: Pos,
        tokens: &[Token],
    ) -> LexResult<Option<Node>> {
        if depth >= MAX_BLOCK_DEPTH {
            return fail(pos, "Blocks are nested too deeply");
        }
        let end = self.segment_end(pos);
        match name {
            "if" => {
                let mut cond = Self::tag_expression(&tokens[1..], pos, end)?;
                let mut branches = Vec::new();
                loop {
                    let (body, term) = self.body(depth + 1, &["elseif", "else", "endif"])?;
                    branches.push((cond, body));
                    let Some((term, tpos, ttokens)) = term else {
                        return fail(pos, "Unclosed \"if\": missing {% endif %}");
                    };
                    match term.as_str() {
                        "elseif" => {
                            cond = Self::tag_expression(&ttokens[1..], tpos, tpos)?;
                        }
                        "else" => {
                            Self::no_arguments(&ttokens, tpos)?;
                            let (otherwise, term) = self.body(depth + 1, &["endif"])?;
                            match term {
                                Some((_, epos, etokens)) => Self::no_arguments(&etokens, epos)?,
                                None => return fail(pos, "Unclosed \"if\": missing {% endif %}"),
                            }
                            return Ok(Some(Node::If {
                                branches,
                                otherwise,
                            }));
                        }
                        _ => {
                            Self::no_arguments(&ttokens, tpos)?;
                            return Ok(Some(Node::If {
                                branches,
                                otherwise: Vec::new(),
                            }));
                        }
                    }
                }
            }
            "for" => {
                let var = match tokens.get(1) {
                    Some(Token {
                        tok: Tok::Name(n), ..
                    }) => n.clone(),
                    _ => return fail(pos, "Expected a variable name after \"for\""),
                };
                match tokens.get(2) {
                    Some(Token {
                        tok: Tok::Name(n), ..
                    }) if &**n == "in" => {}
                    _ => return fail(pos, "Expected \"in\" in \"for\""),
                }
                let iterable = Self::tag_expression(&tokens[3..], pos, end)?;
                let (body, term) = self.body(depth + 1, &["else", "endfor"])?;
                let Some((term, tpos, ttokens)) = term else {
                    return fail(pos, "Unclosed \"for\": missing {% endfor %}");
                };
                Self::no_arguments(&ttokens, tpos)?;
                let otherwise = if term == "else" {
                    let (otherwise, term) = self.body(depth + 1, &["endfor"])?;
                    match term {
                        Some((_, epos, etokens)) => Self::no_arguments(&etokens, epos)?,
                        None => return fail(pos, "Unclosed \"for\": missing {% endfor %}"),
                    }
                    otherwise
                } else {
                    Vec::new()
                };
                Ok(Some(Node::For {
                    var,
                    iterable,
                    body,
                    otherwise,
                    pos,
                }))
            }
            "set" => {
                let var = match tokens.get(1) {
                    Some(Token {
                        tok: Tok::Name(n), ..
                    }) if !matches!(&**n, "true" | "false" | "null" | "none") => n.clone(),
                    _ => return fail(pos, "Expected a variable name after \"set\""),
                };
                match tokens.get(2) {
                    Some(Token {
                        tok: Tok::Sym(Sym::Assign),
                        ..
                    }) => {}
                    _ => return fail(pos, "Expected \"=\" in \"set\""),
                }
                let value = Self::tag_expression(&tokens[3..], pos, end)?;
                Ok(Some(Node::Set { var, value }))
            }
            "elseif" | "else" | "endif" | "endfor" => {
                fail(pos, format!("Unexpected tag \"{name}\""))
            }
            other => fail(pos, format!("Unsupported tag \"{other}\"")),
        }
    }

    fn tag_expression(tokens: &[Token], pos: Pos, end: Pos) -> LexResult<Expr> {
        if tokens.is_empty() {
            return fail(pos, "Expected an expression");
        }
        let mut p = ExprParser::new(tokens, end);
        let e = p.expression(0)?;
        p.finish()?;
        Ok(e)
    }

    fn no_arguments(tokens: &[Token], _pos: Pos) -> LexResult<()> {
        match tokens.get(1) {
            Some(t) => fail(
                t.pos,
                format!("Unexpected {} after the tag name", describe(t)),
            ),
            None => Ok(()),
        }
    }
}

/// What a binary-position token does.
#[derive(Clone, Copy)]
enum Infix {
    Op(BinaryOp),
    Filter,
    Test,
    Coalesce { undefined_only: bool },
}

fn infix(token: &Token) -> Option<(Infix, u16)> {
    Some(match &token.tok {
        Tok::Name(n) => match &**n {
            "or" => (Infix::Op(BinaryOp::Or), 10),
            "and" => (Infix::Op(BinaryOp::And), 15),
            "is" => (Infix::Test, 20),
            "contains" => (Infix::Op(BinaryOp::Contains), 20),
            "in" => (Infix::Op(BinaryOp::In), 20),
            "equals" => (Infix::Op(BinaryOp::Eq), 30),
            _ => return None,
        },
        Tok::Sym(s) => match s {
            Sym::Eq => (Infix::Op(BinaryOp::Eq), 30),
            Sym::Ne => (Infix::Op(BinaryOp::Ne), 30),
            Sym::Lt => (Infix::Op(BinaryOp::Lt), 30),
            Sym::Le => (Infix::Op(BinaryOp::Le), 30),
            Sym::Gt => (Infix::Op(BinaryOp::Gt), 30),
            Sym::Ge => (Infix::Op(BinaryOp::Ge), 30),
            Sym::Plus => (Infix::Op(BinaryOp::Add), 40),
            Sym::Minus => (Infix::Op(BinaryOp::Sub), 40),
            Sym::Star => (Infix::Op(BinaryOp::Mul), 60),
            Sym::Slash => (Infix::Op(BinaryOp::Div), 60),
            Sym::Percent => (Infix::Op(BinaryOp::Mod), 60),
            Sym::Pipe => (Infix::Filter, 100),
            Sym::Tilde => (Infix::Op(BinaryOp::Concat), 110),
            Sym::DotDot => (Infix::Op(BinaryOp::Range), 120),
            Sym::Coalesce => (
                Infix::Coalesce {
                    undefined_only: false,
                },
                120,
            ),
            Sym::UndefinedCoalesce => (
                Infix::Coalesce {
                    undefined_only: true,
                },
                120,
            ),
            _ => return None,
        },
        _ => return None,
    })
}

struct ExprParser<'t> {
    tokens: &'t [Token],
    i: usize,
    /// Where "end of expression" errors point.
    end: Pos,
    /// Recursion depth of `expression`.
    nesting: usize,
}

fn child_depth(kind: &ExprKind) -> u16 {
    let d = |e: &Expr| e.depth;
    let steps = |s: &[Step]| {
        s.iter()
            .map(|s| match s {
                Step::Key(..) => 0,
                Step::Index(e) => e.depth,
            })
            .max()
            .unwrap_or(0)
    };
    let args = |a: &Args| {
        a.slots
            .iter()
            .flatten()
            .chain(a.rest.iter())
            .map(d)
            .max()
            .unwrap_or(0)
    };
    match kind {
        ExprKind::Literal(_) | ExprKind::Method { .. } => 0,
        ExprKind::Path { steps: s, .. } => steps(s),
        ExprKind::Access { base, steps: s } => d(base).max(steps(s)),
        ExprKind::List(items) | ExprKind::Interpolation(items) => {
            items.iter().map(d).max().unwrap_or(0)
        }
        ExprKind::Map(entries) => entries
            .iter()
            .map(|(k, v)| d(k).max(d(v)))
            .max()
            .unwrap_or(0),
        ExprKind::Unary(_, e) => d(e),
        ExprKind::Binary(_, a, b) => d(a).max(d(b)),
        ExprKind::Coalesce { left, right, .. } => d(left).max(d(right)),
        ExprKind::Ternary(a, b, c) => d(a).max(d(b)).max(d(c)),
        ExprKind::Filter { input, args: a, .. } | ExprKind::Test { input, args: a, .. } => {
            d(input).max(args(a))
        }
        ExprKind::Call { args: a, .. } => args(a),
    }
}

fn mk(kind: ExprKind, pos: Pos) -> LexResult<Expr> {
    let depth = child_depth(&kind).saturating_add(1);
    if depth > MAX_EXPR_DEPTH {
        return fail(pos, "Expression is nested too deeply");
    }
    Ok(Expr { kind, pos, depth })
}

impl<'t> ExprParser<'t> {
    fn new(tokens: &'t [Token], end: Pos) -> Self {
        Self {
            tokens,
            i: 0,
            end,
            nesting: 0,
        }
    }

    fn peek(&self) -> Option<&'t Token> {
        self.tokens.get(self.i)
    }

    fn peek_at(&self, k: usize) -> Option<&'t Token> {
        self.tokens.get(self.i + k)
    }

    fn pos(&self) -> Pos {
        self.peek().map_or(self.end, |t| t.pos)
    }

    fn is_sym(&self, sym: Sym) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Sym(s), .. }) if *s == sym)
    }

    fn expect_sym(&mut self, sym: Sym) -> LexResult<()> {
        if self.is_sym(sym) {
            self.i += 1;
            Ok(())
        } else {
            match self.peek() {
                Some(t) => fail(
                    t.pos,
                    format!("Expected \"{}\" but found {}", sym.text(), describe(t)),
                ),
                None => fail(self.end, format!("Expected \"{}\"", sym.text())),
            }
        }
    }

    fn expect_name(&mut self) -> LexResult<(&'t str, Pos)> {
        match self.peek() {
            Some(Token {
                tok: Tok::Name(n),
                pos,
            }) => {
                self.i += 1;
                Ok((n, *pos))
            }
            Some(t) => fail(t.pos, format!("Expected a name but found {}", describe(t))),
            None => fail(self.end, "Expected a name"),
        }
    }

    fn finish(&self) -> LexResult<()> {
        match self.peek() {
            Some(t) => fail(t.pos, format!("Unexpected {}", describe(t))),
            None => Ok(()),
        }
    }

    fn expression(&mut self, min_prec: u16) -> LexResult<Expr> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return fail(self.pos(), "Expression is nested too deeply");
        }
        let result = self.expression_inner(min_prec);
        self.nesting -= 1;
        result
    }

    fn expression_inner(&mut self, min_prec: u16) -> LexResult<Expr> {
        let mut left = self.prefix()?;
        while let Some(token) = self.peek() {
            let Some((op, prec)) = infix(token) else {
                break;
            };
            if prec < min_prec {
                break;
            }
            let op_pos = token.pos;
            self.i += 1;
            left = self.infix_rhs(op, prec, op_pos, left)?;
        }
        if min_prec == 0 && self.is_sym(Sym::Question) {
            return self.ternary(left);
        }
        Ok(left)
    }

    #[inline(never)]
    fn ternary(&mut self, cond: Expr) -> LexResult<Expr> {
        let pos = self.pos();
        self.i += 1;
        let then = self.expression(0)?;
        self.expect_sym(Sym::Colon)?;
        let otherwise = self.expression(0)?;
        mk(
            ExprKind::Ternary(Box::new(cond), Box::new(then), Box::new(otherwise)),
            pos,
        )
    }

    #[inline(never)]
    fn prefix(&mut self) -> LexResult<Expr> {
        let start = self.pos();
        Ok(match self.peek().map(|t| &t.tok) {
            Some(Tok::Name(n)) if &**n == "not" => {
                self.i += 1;
                let operand = self.expression(500)?;
                mk(ExprKind::Unary(UnaryOp::Not, Box::new(operand)), start)?
            }
            Some(Tok::Sym(Sym::Minus)) => {
                self.i += 1;
                let operand = self.expression(500)?;
                match operand.kind {
                    ExprKind::Literal(Value::Number(ref n)) if n.as_i64().is_some() => {
                        let v = n.as_i64().unwrap_or(0);
                        match v.checked_neg() {
                            Some(neg) => mk(ExprKind::Literal(Value::from(neg)), start)?,
                            None => mk(ExprKind::Unary(UnaryOp::Neg, Box::new(operand)), start)?,
                        }
                    }
                    _ => mk(ExprKind::Unary(UnaryOp::Neg, Box::new(operand)), start)?,
                }
            }
            Some(Tok::Sym(Sym::Plus)) => {
                self.i += 1;
                let operand = self.expression(500)?;
                mk(ExprKind::Unary(UnaryOp::Plus, Box::new(operand)), start)?
            }
            Some(Tok::Sym(Sym::LParen)) => {
                self.i += 1;
                let inner = self.expression(0)?;
                self.expect_sym(Sym::RParen)?;
                self.postfix(inner)?
            }
            Some(Tok::Sym(Sym::LBracket)) => {
                let list = self.list()?;
                self.postfix(list)?
            }
            Some(Tok::Sym(Sym::LBrace)) => {
                let map = self.map()?;
                self.postfix(map)?
            }
            _ => self.primary()?,
        })
    }

    #[inline(never)]
    fn infix_rhs(&mut self, op: Infix, prec: u16, op_pos: Pos, left: Expr) -> LexResult<Expr> {
        Ok(match op {
            Infix::Filter => {
                let (name, pos) = self.expect_name()?;
                let filter = Filter::from_name(name);
                let mut args = self.arguments_if_any(
                    filter.params(),
                    false,
                    matches!(filter, Filter::Unknown(_)),
                    name,
                )?;
                if filter == Filter::Jq {
                    args.jq = precompile_jq(&args)?;
                }
                mk(
                    ExprKind::Filter {
                        input: Box::new(left),
                        filter,
                        args,
                    },
                    pos,
                )?
            }
            Infix::Test => {
                let negated =
                    matches!(self.peek(), Some(Token { tok: Tok::Name(n), .. }) if &**n == "not");
                if negated {
                    self.i += 1;
                }
                let (name, pos) = self.expect_name()?;
                let test = Test::from_name(name);
                let args = self.arguments_if_any(
                    test.params(),
                    false,
                    matches!(test, Test::Unknown(_)),
                    name,
                )?;
                mk(
                    ExprKind::Test {
                        input: Box::new(left),
                        test,
                        negated,
                        args,
                    },
                    pos,
                )?
            }
            Infix::Coalesce { undefined_only } => {
                let right = self.expression(prec + 1)?;
                mk(
                    ExprKind::Coalesce {
                        left: Box::new(left),
                        right: Box::new(right),
                        undefined_only,
                    },
                    op_pos,
                )?
            }
            Infix::Op(op) => {
                let right = self.expression(prec + 1)?;
                mk(
                    ExprKind::Binary(op, Box::new(left), Box::new(right)),
                    op_pos,
                )?
            }
        })
    }

    fn primary(&mut self) -> LexResult<Expr> {
        let Some(token) = self.peek() else {
            return fail(self.end, "Unexpected end of expression");
        };
        let pos = token.pos;
        let expr = match &token.tok {
            Tok::Name(name) => {
                self.i += 1;
                match &**name {
                    "true" | "TRUE" => mk(ExprKind::Literal(Value::Bool(true)), pos)?,
                    "false" | "FALSE" => mk(ExprKind::Literal(Value::Bool(false)), pos)?,
                    "null" | "NULL" | "none" | "NONE" => mk(ExprKind::Literal(Value::Null), pos)?,
                    _ if self.is_sym(Sym::LParen) => {
                        let function = Function::from_name(name);
                        let args = self.arguments(
                            function.params(),
                            function.is_variadic(),
                            matches!(function, Function::Unknown(_)),
                            name,
                        )?;
                        mk(ExprKind::Call { function, args }, pos)?
                    }
                    _ => mk(
                        ExprKind::Path {
                            root: name.clone(),
                            steps: Vec::new(),
                        },
                        pos,
                    )?,
                }
            }
            Tok::Int(n) => {
                self.i += 1;
                mk(ExprKind::Literal(Value::from(*n)), pos)?
            }
            Tok::Float(f) => {
                self.i += 1;
                let Some(n) = serde_json::Number::from_f64(*f) else {
                    return fail(pos, "Invalid number");
                };
                mk(ExprKind::Literal(Value::Number(n)), pos)?
            }
            Tok::Str(s) => {
                self.i += 1;
                mk(ExprKind::Literal(Value::String(s.to_string())), pos)?
            }
            Tok::Interp(parts) => {
                self.i += 1;
                let mut exprs = Vec::with_capacity(parts.len());
                for part in parts {
                    match part {
                        Part::Lit(s) => {
                            exprs.push(mk(ExprKind::Literal(Value::String(s.to_string())), pos)?)
                        }
                        Part::Expr(tokens, ppos) => {
                            if tokens.is_empty() {
                                return fail(*ppos, "Empty interpolation");
                            }
                            let mut sub = ExprParser::new(tokens, *ppos);
                            sub.nesting = self.nesting;
                            let e = sub.expression(0)?;
                            sub.finish()?;
                            exprs.push(e);
                        }
                    }
                }
                mk(ExprKind::Interpolation(exprs), pos)?
            }
            Tok::Sym(_) => return fail(pos, format!("Unexpected {}", describe(token))),
        };
        self.postfix(expr)
    }

    /// `.name`, `[expr]` and `.method(...)` after an expression.
    fn postfix(&mut self, base: Expr) -> LexResult<Expr> {
        let mut steps = Vec::new();
        loop {
            if self.is_sym(Sym::Dot) {
                self.i += 1;
                let (key, pos) = match self.peek() {
                    Some(Token {
                        tok: Tok::Name(n),
                        pos,
                    }) => (n.clone(), *pos),
                    Some(Token {
                        tok: Tok::Int(n),
                        pos,
                    }) => (n.to_string().into_boxed_str(), *pos),
                    Some(t) => {
                        return fail(
                            t.pos,
                            format!("Expected an attribute name but found {}", describe(t)),
                        );
                    }
                    None => return fail(self.end, "Expected an attribute name"),
                };
                self.i += 1;
                if self.is_sym(Sym::LParen) {
                    // A Java method call: parse its arguments, fail when evaluated.
                    let _ = self.arguments(&[], true, true, &key)?;
                    return mk(ExprKind::Method { name: key }, pos);
                }
                steps.push(Step::Key(key, pos));
            } else if self.is_sym(Sym::LBracket) {
                self.i += 1;
                let index = self.expression(0)?;
                self.expect_sym(Sym::RBracket)?;
                steps.push(Step::Index(index));
            } else {
                break;
            }
        }
        if steps.is_empty() {
            return Ok(base);
        }
        let pos = base.pos;
        match base.kind {
            ExprKind::Path {
                root,
                steps: mut existing,
            } => {
                existing.extend(steps);
                mk(
                    ExprKind::Path {
                        root,
                        steps: existing,
                    },
                    pos,
                )
            }
            _ => mk(
                ExprKind::Access {
                    base: Box::new(base),
                    steps,
                },
                pos,
            ),
        }
    }

    fn list(&mut self) -> LexResult<Expr> {
        let pos = self.pos();
        self.expect_sym(Sym::LBracket)?;
        let mut items = Vec::new();
        if !self.is_sym(Sym::RBracket) {
            loop {
                items.push(self.expression(0)?);
                if self.is_sym(Sym::RBracket) {
                    break;
                }
                self.expect_sym(Sym::Comma)?;
            }
        }
        self.expect_sym(Sym::RBracket)?;
        // A list of literals is built once, here, not at every render.
        if items.iter().all(|e| matches!(e.kind, ExprKind::Literal(_))) {
            let values = items
                .into_iter()
                .map(|e| match e.kind {
                    ExprKind::Literal(v) => v,
                    _ => Value::Null,
                })
                .collect();
            return mk(ExprKind::Literal(Value::Array(values)), pos);
        }
        mk(ExprKind::List(items), pos)
    }

    fn map(&mut self) -> LexResult<Expr> {
        let pos = self.pos();
        self.expect_sym(Sym::LBrace)?;
        let mut entries = Vec::new();
        if !self.is_sym(Sym::RBrace) {
            loop {
                let key = self.expression(0)?;
                self.expect_sym(Sym::Colon)?;
                let value = self.expression(0)?;
                entries.push((key, value));
                if self.is_sym(Sym::RBrace) {
                    break;
                }
                self.expect_sym(Sym::Comma)?;
            }
        }
        self.expect_sym(Sym::RBrace)?;
        // A map of literals is built once, here, not at every render.
        if entries.iter().all(|(k, v)| {
            matches!(k.kind, ExprKind::Literal(_)) && matches!(v.kind, ExprKind::Literal(_))
        }) {
            let mut map = serde_json::Map::with_capacity(entries.len());
            for (k, v) in entries {
                let (ExprKind::Literal(k), ExprKind::Literal(v)) = (k.kind, v.kind) else {
                    continue;
                };
                let key = match k {
                    Value::String(s) => s,
                    other => super::eval::java_string(&other),
                };
                map.insert(key, v);
            }
            return mk(ExprKind::Literal(Value::Object(map)), pos);
        }
        mk(ExprKind::Map(entries), pos)
    }

    fn arguments_if_any(
        &mut self,
        params: &[&str],
        variadic: bool,
        unknown: bool,
        what: &str,
    ) -> LexResult<Args> {
        if self.is_sym(Sym::LParen) {
            self.arguments(params, variadic, unknown, what)
        } else {
            Ok(Args {
                slots: vec![None; params.len()],
                ..Args::default()
            })
        }
    }

    /// `(a, b, name=c)`, bound to `params`.
    fn arguments(
        &mut self,
        params: &[&str],
        variadic: bool,
        unknown: bool,
        what: &str,
    ) -> LexResult<Args> {
        let open = self.pos();
        self.expect_sym(Sym::LParen)?;
        let mut args = Args {
            slots: vec![None; params.len()],
            ..Args::default()
        };
        let mut positional = 0usize;
        let mut named_seen = false;
        while !self.is_sym(Sym::RParen) {
            if positional > 0 || named_seen {
                self.expect_sym(Sym::Comma)?;
            }
            let named = match (self.peek(), self.peek_at(1)) {
                (
                    Some(Token {
                        tok: Tok::Name(n),
                        pos,
                    }),
                    Some(Token {
                        tok: Tok::Sym(Sym::Assign),
                        ..
                    }),
                ) => {
                    self.i += 2;
                    Some((n.clone(), *pos))
                }
                _ => None,
            };
            let value = self.expression(0)?;
            match named {
                Some((name, pos)) => {
                    named_seen = true;
                    if unknown || variadic {
                        continue;
                    }
                    let Some(slot) = params.iter().position(|p| **p == *name) else {
                        return fail(pos, format!("\"{what}\" has no argument named \"{name}\""));
                    };
                    if args.slots[slot].is_some() {
                        return fail(pos, format!("Argument \"{name}\" is given twice"));
                    }
                    args.slots[slot] = Some(value);
                }
                None => {
                    if named_seen {
                        return fail(
                            value.pos,
                            "Positional arguments must be declared before any named arguments.",
                        );
                    }
                    if variadic || unknown {
                        args.rest.push(value);
                    } else if positional < params.len() {
                        args.slots[positional] = Some(value);
                    } else {
                        return fail(value.pos, format!("Too many arguments for \"{what}\""));
                    }
                    positional += 1;
                }
            }
        }
        self.expect_sym(Sym::RParen)?;
        let _ = open;
        Ok(args)
    }
}

fn precompile_jq(args: &Args) -> LexResult<Option<Arc<JqProgram>>> {
    match args.slots.first() {
        Some(Some(Expr {
            kind: ExprKind::Literal(Value::String(code)),
            pos,
            ..
        })) => match JqProgram::compile(code) {
            Ok(p) => Ok(Some(Arc::new(p))),
            Err(message) => fail(*pos, message),
        },
        _ => Ok(None),
    }
}

fn describe(token: &Token) -> String {
    match &token.tok {
        Tok::Name(n) => format!("name \"{n}\""),
        Tok::Int(n) => format!("number \"{n}\""),
        Tok::Float(f) => format!("number \"{f}\""),
        Tok::Str(s) => format!("string \"{s}\""),
        Tok::Interp(_) => "string".to_owned(),
        Tok::Sym(s) => format!("\"{}\"", s.text()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(src: &str) -> Expr {
        let segs = lexer::segments(&format!("{{{{ {src} }}}}")).expect("lexes");
        let Segment::Print { tokens, .. } = &segs[0] else {
            panic!("print expected")
        };
        parse_expression_tokens(tokens, src.len()).expect("parses")
    }

    /// A compact rendering of the tree, to check precedence.
    fn show(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Literal(v) => v.to_string(),
            ExprKind::Path { root, steps } => {
                let mut s = root.to_string();
                for step in steps {
                    match step {
                        Step::Key(k, _) => {
                            s.push('.');
                            s.push_str(k);
                        }
                        Step::Index(i) => s.push_str(&format!("[{}]", show(i))),
                    }
                }
                s
            }
            ExprKind::Unary(op, e) => format!("({op:?} {})", show(e)),
            ExprKind::Binary(op, a, b) => format!("({} {op:?} {})", show(a), show(b)),
            ExprKind::Coalesce { left, right, .. } => {
                format!("({} ?? {})", show(left), show(right))
            }
            ExprKind::Ternary(a, b, c) => format!("({} ? {} : {})", show(a), show(b), show(c)),
            ExprKind::Filter { input, filter, .. } => {
                format!("({} | {})", show(input), filter.name())
            }
            ExprKind::Test {
                input,
                test,
                negated,
                ..
            } => format!(
                "({} is{} {})",
                show(input),
                if *negated { " not" } else { "" },
                test.name()
            ),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn precedence_follows_pebble() {
        assert_eq!(show(&expr("1 + 2 * 3")), "(1 Add (2 Mul 3))");
        assert_eq!(show(&expr("a or b and c")), "(a Or (b And c))");
        assert_eq!(show(&expr("a ~ b | upper")), "((a Concat b) | upper)");
        assert_eq!(show(&expr("a | upper ~ b")), "((a | upper) Concat b)");
        assert_eq!(show(&expr("a ?? b | upper")), "((a ?? b) | upper)");
        assert_eq!(show(&expr("a ?? 'x' == 'y'")), "((a ?? \"x\") Eq \"y\")");
        assert_eq!(show(&expr("not a == b")), "((Not a) Eq b)");
        assert_eq!(
            show(&expr("a is not null and b")),
            "((a is not null) And b)"
        );
        assert_eq!(
            show(&expr("a > 1 ? 'x' : 'y'")),
            "((a Gt 1) ? \"x\" : \"y\")"
        );
        assert_eq!(show(&expr("1 - 2 - 3")), "((1 Sub 2) Sub 3)");
        assert_eq!(show(&expr("-1")), "-1");
        assert_eq!(show(&expr("o.t[x.v]['a'].b")), "o.t[x.v][\"a\"].b");
    }

    #[test]
    fn arguments_bind_to_parameters() {
        let e = expr("d | date(format='yyyy', timeZone='UTC')");
        let ExprKind::Filter { args, .. } = &e.kind else {
            panic!("filter expected")
        };
        assert!(args.slots[0].is_some() && args.slots[1].is_some() && args.slots[2].is_none());
    }

    #[test]
    fn syntax_errors_carry_their_position() {
        let err = parse_template("ab {{ a + }}").expect_err("fails");
        assert_eq!(err.pos, 3);
        let err = parse_template("{{ upper(1, x=2, 3) }}").expect_err("fails");
        assert!(err.message.contains("Positional"), "{}", err.message);
        assert!(parse_template("{{ x | date(nope=1) }}").is_err());
        assert!(parse_template("{% if a %}x").is_err());
        assert!(parse_template("{% endif %}").is_err());
        assert!(parse_template("{% for x of y %}{% endfor %}").is_err());
        assert!(parse_template("{% macro m() %}{% endmacro %}").is_err());
        assert!(parse_template("{{ x | jq('.[') }}").is_err());
    }

    #[test]
    fn deep_expressions_are_rejected_not_overflowed() {
        let deep = format!("{{{{ {} }}}}", vec!["a"; 5000].join(" ~ "));
        assert!(parse_template(&deep).is_err());
        let nested = format!("{{{{ {}1{} }}}}", "(".repeat(40), ")".repeat(40));
        assert!(parse_template(&nested).is_ok());
        let too_nested = format!("{{{{ {}1{} }}}}", "(".repeat(500), ")".repeat(500));
        assert!(parse_template(&too_nested).is_err());
    }
}
