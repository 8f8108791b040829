//! Our native jq functions: the guards the rewrite inserts (see
//! [`super::rewrite`]) and the replacements of jaq's `range` and
//! `fromjson`.

use jaq_core::box_iter::box_once;
use jaq_core::data::HasLut;
use jaq_core::native::bome;
use jaq_core::{Cv, ValXs};
use jaq_json::Val;
use jaq_std::ValT as _;
use serde_json::Value;

use super::{JqData, Metered, shown, to_jaq};

/// What walking a value costs: a step per value it holds (array items,
/// object keys and values, at every depth) and per 64 bytes of its
/// strings; and about how long its JSON text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Walk {
    pub steps: u64,
    pub text_bytes: u64,
}

/// Measures `v`, stopping once the steps pass `limit`: a value whose parts
/// are shared can be far larger than the memory it holds, so the walk is
/// as long as the run can pay for, and no longer. Iterative, so that a
/// deeply nested value cannot exhaust the stack.
pub(super) fn measure(v: &Val, limit: u64) -> Walk {
    let mut walk = Walk {
        steps: 0,
        text_bytes: 0,
    };
    let mut todo: Vec<Box<dyn Iterator<Item = &Val> + '_>> = vec![Box::new(std::iter::once(v))];
    while let Some(next) = todo.last_mut() {
        let Some(v) = next.next() else {
            todo.pop();
            continue;
        };
        walk.steps += 1;
        if walk.steps > limit {
            break;
        }
        match v {
            Val::Arr(items) => {
                walk.text_bytes += 2 + items.len() as u64;
                todo.push(Box::new(items.iter()));
            }
            Val::Obj(map) => {
                walk.text_bytes += 2 + 2 * map.len() as u64;
                todo.push(Box::new(map.iter().flat_map(|(k, v)| [k, v])));
            }
            other => match other.as_bytes() {
                Some(bytes) => {
                    walk.steps += bytes.len() as u64 / 64;
                    walk.text_bytes += bytes.len() as u64 + 2;
                }
                // null, a boolean or a number
                None => walk.text_bytes += 8,
            },
        }
    }
    walk
}

/// Identity, paid for by walking the input: what the next term (a
/// comparison, a sort) does over the whole value is then bounded by the
/// steps the run had.
pub(super) fn walk<'a>(cv: Cv<'a, JqData>) -> ValXs<'a, Val> {
    cv.0.data().pay_for(&cv.1);
    box_once(Ok(cv.1))
}

/// [`walk`], and the input's JSON text must fit the memory the run has
/// left: what comes next prints it.
pub(super) fn text<'a>(cv: Cv<'a, JqData>) -> ValXs<'a, Val> {
    let data = cv.0.data();
    let walk = data.pay_for(&cv.1);
    data.will_hold(walk.text_bytes);
    box_once(Ok(cv.1))
}

/// `l * r`. A string times a number is the string repeated: its size must
/// fit the memory the run has left (jaq asks for it in one allocation,
/// and a failed allocation aborts the process), and it is paid for as
/// text is, a step per 64 bytes. Objects are merged deeply, so both are
/// walked first.
pub(super) fn mul<'a>(mut cv: Cv<'a, JqData>) -> ValXs<'a, Val> {
    let r = cv.0.pop_var();
    let l = cv.0.pop_var();
    let data = cv.0.data();
    match (&l, &r) {
        (Val::Num(_), Val::Num(_)) => {}
        (s, n @ Val::Num(_)) | (n @ Val::Num(_), s) if s.as_bytes().is_some() => {
            let len = s.as_bytes().map_or(0, <[u8]>::len) as f64;
            // jaq repeats for a positive integer (big ones saturated), and
            // gives null or an error otherwise.
            let times = n.as_f64().filter(|_| n.is_int()).unwrap_or(0.0);
            if times >= 1.0 {
                // Saturating: a float past u64::MAX becomes u64::MAX.
                let bytes = (len * times) as u64;
                data.will_hold(bytes);
                data.spend(bytes / 64);
            }
        }
        _ => {
            data.pay_for(&l);
            data.pay_for(&r);
        }
    }
    bome(l * r)
}

/// `l - r`. Subtracting arrays compares every item of one with every item
/// of the other: paid for, a step per pair, before it starts.
pub(super) fn sub<'a>(mut cv: Cv<'a, JqData>) -> ValXs<'a, Val> {
    let r = cv.0.pop_var();
    let l = cv.0.pop_var();
    if let (Val::Arr(a), Val::Arr(b)) = (&l, &r) {
        let data = cv.0.data();
        data.pay_for(&l);
        data.pay_for(&r);
        data.spend((a.len() as u64).saturating_mul(b.len() as u64));
    }
    bome(l - r)
}

/// jaq's native `range/3`, each item paid for with a lookup (one step): the
/// same outputs (`$from`, then `+ $by` while short of `$to`, forever when
/// `$by` is 0 and `$to` is never met).
pub(super) fn range<'a>(mut cv: Cv<'a, JqData>) -> ValXs<'a, Val> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let data: Metered<'a> = cv.0.data().clone();
    let by = cv.0.pop_var();
    let to = cv.0.pop_var();
    let from = cv.0.pop_var();
    let direction = by.partial_cmp(&Val::from(0isize)).unwrap_or(Equal);
    let mut next: Option<jaq_core::ValX<'a, Val>> = Some(Ok(from));
    Box::new(std::iter::from_fn(move || {
        data.lut();
        match next.take()? {
            Ok(x) => {
                let more = match direction {
                    Greater => x < to,
                    Less => x > to,
                    Equal => x != to,
                };
                if !more {
                    return None;
                }
                next = Some((x.clone() + by.clone()).map_err(jaq_core::Exn::from));
                Some(Ok(x))
            }
            // The error is the last output.
            Err(e) => Some(Err(e)),
        }
    }))
}

/// `fromjson`, read by serde_json, whose parser stops at 128 levels of
/// nesting (jaq's recursed as deep as the text went: 200,000 `[` overflowed
/// the thread's stack). Every JSON value in the string is an output, as in
/// jaq; text that is not JSON is an error naming the parser's complaint.
pub(super) fn fromjson<'a>(cv: Cv<'a, JqData>) -> ValXs<'a, Val> {
    let fail = |m: String| jaq_core::Exn::from(jaq_core::Error::str(m));
    let Some(text) = cv.1.as_utf8_bytes() else {
        let m = format!(
            "{} cannot be parsed as JSON: it is not a string",
            shown(&cv.1, 200)
        );
        return box_once(Err(fail(m)));
    };
    let text = String::from_utf8_lossy(text);
    let values: Vec<_> = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .map(|v| {
            v.map(|v| to_jaq(&v)).map_err(|e| {
                fail(format!(
                    "{} cannot be parsed as JSON: {e}",
                    shown(&format_args!("{text:?}"), 200)
                ))
            })
        })
        .collect();
    Box::new(values.into_iter())
}
