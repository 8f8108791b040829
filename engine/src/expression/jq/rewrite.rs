//! The program jaq runs is the one the user wrote, rewritten so that the
//! operations jaq runs natively over a whole value pay for that value.
//!
//! jaq spends a step (see [`super::Metered`]) per term it evaluates, but
//! some single terms do work that no step count bounds: jq values share
//! their parts, so `reduce range(40) as $i (1; [., .])` is forty steps and
//! a value of a trillion leaves. Comparing two such values, sorting them,
//! printing one (`tojson`, `"\(.)"`), or collecting everything `..` visits
//! would hold the shard for hours or exhaust the heap; `"x" * 1e12` asks
//! for a terabyte in one allocation, which aborts the process. So before a
//! program is compiled, its terms (and those of jq's standard library,
//! which is jq code too) are rewritten:
//!
//! - each side of a comparison, each interpolated value of a string and
//!   the input and arguments of the natives that walk a whole value pass
//!   through a guard, an identity that pays a step per node it walks (and
//!   per 64 bytes of text), so the walk that follows is paid in advance;
//! - every item collected into an array (`[f]` becomes `[f | .]`) pays a
//!   step, since jaq collects the outputs of a native iterator (`..`,
//!   `.[][]`) without evaluating a term between them;
//! - `*` and `-` (and `*=`, `-=`) call natives that check the size of what
//!   they will build, or pay for the pairs they will compare, before they
//!   do the same arithmetic.
//!
//! The guards are natives with names a program cannot define (`@…`), so a
//! user's definitions cannot replace them.

use jaq_core::load::lex::StrPart;
use jaq_core::load::parse::{BinaryOp, Def, Pattern, Term};
use jaq_core::ops::Math;
use jaq_core::path::{Part, Path};

/// Identity that pays for walking its input (see `walk` in `natives`).
pub(super) const WALK: &str = "@peregrine_walk";
/// [`WALK`], and the input's text must fit the memory the run has left:
/// for what prints a value.
pub(super) const TEXT: &str = "@peregrine_text";
/// `l * r`, with the size of a repeated string checked first.
pub(super) const MUL: &str = "@peregrine_mul";
/// `l - r`, with the comparisons of array subtraction paid for first.
pub(super) const SUB: &str = "@peregrine_sub";
/// The variable that `l *= r` binds `r` to (`r as $x | l |= . * $x`).
const UPDATE_VAR: &str = "$@peregrine_update";

/// Natives that walk their input and their arguments whole: comparisons
/// (`contains`, `indices`, the sorts and groupings) over every item.
const WALK_INPUT_AND_ARGS: &[&str] = &[
    "contains",
    "indices",
    "sort",
    "sort_by",
    "group_by",
    "min_by_or_empty",
    "max_by_or_empty",
];
/// Natives that compare only their arguments against a few items.
const WALK_ARGS: &[&str] = &["bsearch"];
/// Natives that print their input.
const PRINT_INPUT: &[&str] = &["tojson", "debug_empty", "stderr_empty"];

/// The prefix of the natives' names above, which no definition may take.
const RESERVED: &str = "@peregrine_";

/// The definitions, rewritten (jq's standard library).
pub(super) fn defs<'s>(defs: impl IntoIterator<Item = Def<&'s str>>) -> Vec<Def<&'s str>> {
    let mut r = Rewriter::default();
    defs.into_iter().map(|d| r.def(d)).collect()
}

/// A program, rewritten; or the reserved name it defines.
pub(super) fn program(t: Term<&str>) -> Result<Term<&str>, String> {
    let mut r = Rewriter::default();
    let t = r.term(t);
    match r.reserved {
        Some(name) => Err(format!(
            "the name `{name}` is reserved (names starting with `{RESERVED}` cannot be defined)"
        )),
        None => Ok(t),
    }
}

#[derive(Default)]
struct Rewriter<'s> {
    /// A definition with a reserved name, which would replace a guard.
    reserved: Option<&'s str>,
}

impl<'s> Rewriter<'s> {
    fn def(&mut self, d: Def<&'s str>) -> Def<&'s str> {
        if d.name.starts_with(RESERVED) {
            self.reserved.get_or_insert(d.name);
        }
        Def {
            name: d.name,
            args: d.args,
            body: self.term(d.body),
        }
    }

    fn term(&mut self, t: Term<&'s str>) -> Term<&'s str> {
        match t {
            Term::Id | Term::Recurse | Term::Num(_) | Term::Var(_) | Term::Break(_) => t,
            Term::Str(format, parts) => Term::Str(
                format,
                parts
                    .into_iter()
                    .map(|part| match part {
                        StrPart::Term(t) => StrPart::Term(pipe(self.term(t), TEXT)),
                        other => other,
                    })
                    .collect(),
            ),
            Term::Arr(None) => Term::Arr(None),
            // `[f | .]`: jaq looks `.` up, a step, for each item.
            Term::Arr(Some(items)) => Term::Arr(Some(Box::new(Term::BinOp(
                Box::new(self.term(*items)),
                BinaryOp::Pipe(None),
                Box::new(Term::Id),
            )))),
            Term::Obj(entries) => Term::Obj(
                entries
                    .into_iter()
                    .map(|(k, v)| (self.term(k), v.map(|t| self.term(t))))
                    .collect(),
            ),
            Term::Neg(t) => Term::Neg(Box::new(self.term(*t))),
            Term::BinOp(l, op, r) => {
                let l = self.term(*l);
                let r = self.term(*r);
                self.binop(l, op, r)
            }
            Term::Label(x, t) => Term::Label(x, Box::new(self.term(*t))),
            Term::Fold(kind, xs, pat, args) => Term::Fold(
                kind,
                Box::new(self.term(*xs)),
                self.pattern(pat),
                args.into_iter().map(|t| self.term(t)).collect(),
            ),
            Term::TryCatch(t, catch) => Term::TryCatch(
                Box::new(self.term(*t)),
                catch.map(|c| Box::new(self.term(*c))),
            ),
            Term::IfThenElse(branches, otherwise) => Term::IfThenElse(
                branches
                    .into_iter()
                    .map(|(cond, then)| (self.term(cond), self.term(then)))
                    .collect(),
                otherwise.map(|t| Box::new(self.term(*t))),
            ),
            Term::Def(defs, t) => Term::Def(
                defs.into_iter().map(|d| self.def(d)).collect(),
                Box::new(self.term(*t)),
            ),
            Term::Call(name, args) => {
                let args = args.into_iter().map(|t| self.term(t)).collect();
                call(name, args)
            }
            Term::Path(t, path) => Term::Path(Box::new(self.term(*t)), self.path(path)),
        }
    }

    fn binop(
        &mut self,
        l: Term<&'s str>,
        op: BinaryOp<&'s str>,
        r: Term<&'s str>,
    ) -> Term<&'s str> {
        match op {
            // Comparing against a literal costs what the literal holds.
            BinaryOp::Cmp(_) if literal(&l) || literal(&r) => {
                Term::BinOp(Box::new(l), op, Box::new(r))
            }
            BinaryOp::Cmp(_) => Term::BinOp(Box::new(pipe(l, WALK)), op, Box::new(pipe(r, WALK))),
            BinaryOp::Math(Math::Mul) => Term::Call(MUL, vec![l, r]),
            BinaryOp::Math(Math::Sub) => Term::Call(SUB, vec![l, r]),
            // `l op= r` is `r as $x | l |= . op $x`.
            BinaryOp::UpdateMath(math @ (Math::Mul | Math::Sub)) => {
                let native = if matches!(math, Math::Mul) { MUL } else { SUB };
                let update = Term::Call(native, vec![Term::Id, Term::Var(UPDATE_VAR)]);
                Term::BinOp(
                    Box::new(r),
                    BinaryOp::Pipe(Some(Pattern::Var(UPDATE_VAR))),
                    Box::new(Term::BinOp(Box::new(l), BinaryOp::Update, Box::new(update))),
                )
            }
            BinaryOp::Pipe(Some(pat)) => Term::BinOp(
                Box::new(l),
                BinaryOp::Pipe(Some(self.pattern(pat))),
                Box::new(r),
            ),
            op => Term::BinOp(Box::new(l), op, Box::new(r)),
        }
    }

    fn pattern(&mut self, p: Pattern<&'s str>) -> Pattern<&'s str> {
        match p {
            Pattern::Var(_) => p,
            Pattern::Arr(items) => {
                Pattern::Arr(items.into_iter().map(|p| self.pattern(p)).collect())
            }
            Pattern::Obj(entries) => Pattern::Obj(
                entries
                    .into_iter()
                    .map(|(k, v)| (self.term(k), self.pattern(v)))
                    .collect(),
            ),
        }
    }

    fn path(&mut self, p: Path<Term<&'s str>>) -> Path<Term<&'s str>> {
        Path(
            p.0.into_iter()
                .map(|(part, opt)| {
                    let part = match part {
                        Part::Index(i) => Part::Index(self.term(i)),
                        Part::Range(from, upto) => {
                            let from = from.map(|t| self.term(t));
                            Part::Range(from, upto.map(|t| self.term(t)))
                        }
                    };
                    (part, opt)
                })
                .collect(),
        )
    }
}

fn call<'s>(name: &'s str, args: Vec<Term<&'s str>>) -> Term<&'s str> {
    let walk_args = |args: Vec<Term<&'s str>>| args.into_iter().map(|a| pipe(a, WALK)).collect();
    if WALK_INPUT_AND_ARGS.contains(&name) {
        pipe_into(WALK, Term::Call(name, walk_args(args)))
    } else if WALK_ARGS.contains(&name) {
        Term::Call(name, walk_args(args))
    } else if PRINT_INPUT.contains(&name) {
        pipe_into(TEXT, Term::Call(name, args))
    } else {
        Term::Call(name, args)
    }
}

/// A number, or a string with nothing interpolated.
fn literal(t: &Term<&str>) -> bool {
    match t {
        Term::Num(_) => true,
        Term::Str(_, parts) => parts.iter().all(|p| !matches!(p, StrPart::Term(_))),
        _ => false,
    }
}

/// `t | name`.
fn pipe<'s>(t: Term<&'s str>, name: &'s str) -> Term<&'s str> {
    Term::BinOp(
        Box::new(t),
        BinaryOp::Pipe(None),
        Box::new(Term::Call(name, Vec::new())),
    )
}

/// `name | t`.
fn pipe_into<'s>(name: &'s str, t: Term<&'s str>) -> Term<&'s str> {
    Term::BinOp(
        Box::new(Term::Call(name, Vec::new())),
        BinaryOp::Pipe(None),
        Box::new(t),
    )
}
