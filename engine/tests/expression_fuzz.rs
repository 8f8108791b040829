//! Fuzz-style properties: whatever the input, compiling and rendering
//! return `Ok` or `Err`, and never panic or overflow the stack.

use peregrine_engine::expression::{JsonContext, Property, Template};
use proptest::prelude::*;
use serde_json::{Value, json};

fn vars() -> Value {
    json!({
        "inputs": {"s": "text", "n": 3, "f": 2.5, "l": [1, "a", null], "m": {"k": {"v": 1}}, "z": null},
        "outputs": {"t": {"a": {"x": {"value": 1}}}},
        "taskrun": {"value": "a"},
        "parents": [{"taskrun": {"value": "a"}}],
        "r": "{{ render(r) }}",
        "deep": format!("{{{{ {} ~ render(deep) }}}}", vec!["(1 | abs)"; 95].join(" ~ "))
    })
}

/// Pieces that lexers, parsers and evaluators find interesting.
const FRAGMENTS: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    "{{-",
    "-}}",
    "{%-",
    "-%}",
    " ",
    "\n",
    "inputs",
    "outputs",
    "taskrun",
    "parents",
    "loop",
    ".",
    "[",
    "]",
    "(",
    ")",
    "{",
    "}",
    ",",
    ":",
    "?",
    "??",
    "???",
    "|",
    "=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "~",
    "..",
    "==",
    "!=",
    "<",
    ">=",
    "and",
    "or",
    "not",
    "is",
    "is not",
    "contains",
    "in",
    "null",
    "true",
    "0",
    "1",
    "-1",
    "2.5",
    "99999999999",
    "'a'",
    "\"b\"",
    "\"#{",
    "'",
    "\"",
    "s",
    "n",
    "l",
    "m",
    "k",
    "t",
    "x",
    "value",
    "upper",
    "default",
    "length",
    "join",
    "split",
    "replace",
    "slice",
    "first",
    "keys",
    "jq",
    "date",
    "dateAdd",
    "toJson",
    "number",
    "abs",
    "round",
    "range(",
    "max(",
    "fromJson(",
    "currentEachOutput(",
    "now(",
    "defined",
    "empty",
    "json",
    "even",
    "if",
    "elseif",
    "else",
    "endif",
    "for",
    "endfor",
    "set",
    "raw",
    "endraw",
    "\\",
    "é",
    "💥",
];

fn fragment_template() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40).prop_map(|parts| parts.concat())
}

/// Expressions built from a small grammar, so that most of them parse and
/// the evaluator, not only the parser, gets exercised.
fn expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("inputs.s".to_owned()),
        Just("inputs.n".to_owned()),
        Just("inputs.f".to_owned()),
        Just("inputs.l".to_owned()),
        Just("inputs.m".to_owned()),
        Just("inputs.z".to_owned()),
        Just("nope".to_owned()),
        Just("outputs.t[taskrun.value].x.value".to_owned()),
        Just("parents[0].taskrun.value".to_owned()),
        Just("null".to_owned()),
        (-5i64..50).prop_map(|n| n.to_string()),
        "[a-z]{0,3}".prop_map(|s| format!("'{s}'")),
    ];
    leaf.prop_recursive(4, 32, 3, |inner| {
        let binary = prop::sample::select(
            &[
                "+", "-", "*", "/", "%", "~", "..", "==", "<", "and", "or", "??", "???",
                "contains", "in",
            ][..],
        );
        let filter = prop::sample::select(
            &[
                "upper",
                "length",
                "first",
                "last",
                "keys",
                "values",
                "toJson",
                "trim",
                "abs",
                "default('d')",
                "join(',')",
                "split(',')",
                "slice(1)",
                "round",
                "jq('.')",
                "date",
                "number",
                "slugify",
                "replace({'a': 'b'})",
                "capitalize",
            ][..],
        );
        let test = prop::sample::select(&["null", "defined", "empty", "json", "even", "odd"][..]);
        prop_oneof![
            (inner.clone(), binary, inner.clone()).prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (inner.clone(), filter).prop_map(|(a, f)| format!("{a} | {f}")),
            (inner.clone(), test).prop_map(|(a, t)| format!("({a} is {t})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|v| format!("[{}]", v.join(", "))),
            inner.clone().prop_map(|a| format!("{{'k': {a}}}")),
            inner.clone().prop_map(|a| format!("(not {a})")),
            inner.clone().prop_map(|a| format!("({a})[0]")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("max({a}, {b})")),
        ]
    })
}

fn template() -> impl Strategy<Value = String> {
    prop_oneof![
        expression().prop_map(|e| format!("{{{{ {e} }}}}")),
        (expression(), expression(), expression()).prop_map(|(c, a, b)| format!(
            "{{% if {c} %}}{{{{ {a} }}}}{{% else %}}{{{{ {b} }}}}{{% endif %}}"
        )),
        (expression(), expression()).prop_map(|(l, b)| {
            format!(
                "{{% for x in {l} %}}{{{{ loop.index }}}}{{{{ x }}}}{{{{ {b} }}}}{{% endfor %}}"
            )
        }),
        (expression(), expression())
            .prop_map(|(a, b)| format!("{{% set y = {a} %}}[{{{{ y }}}}|{{{{ {b} }}}}]")),
    ]
}

fn exercise(source: &str) {
    let vars = vars();
    let ctx = JsonContext::new(&vars);
    if let Ok(t) = Template::compile(source) {
        let _ = t.render(&ctx);
        let _ = t.render_string(&ctx);
    }
    if let Ok(p) = Property::compile(&json!({"k": source, "l": [source]})) {
        let _ = p.render(&ctx);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_strings_never_panic(source in any::<String>()) {
        exercise(&source);
    }

    #[test]
    fn arbitrary_strings_inside_tags_never_panic(body in ".{0,60}") {
        exercise(&format!("{{{{ {body} }}}}"));
        exercise(&format!("{{% {body} %}}x{{% endif %}}"));
    }

    #[test]
    fn fragment_soup_never_panics(source in fragment_template()) {
        exercise(&source);
    }

    #[test]
    fn generated_templates_never_panic(source in template()) {
        exercise(&source);
    }
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    // The deepest accepted templates must run within a 2 MiB thread stack
    // (Rust's and tokio's default), even in a debug build.
    let small_stack = std::thread::Builder::new().stack_size(2 * 1024 * 1024);
    small_stack
        .spawn(deep_templates)
        .expect("spawns")
        .join()
        .expect("no panic, no overflow");
}

fn deep_templates() {
    // A variable that renders itself, at the deepest expression accepted.
    exercise("{{ render(r) }}");
    exercise("{{ render(deep) }}");
    for depth in [100usize, 1_000, 100_000] {
        exercise(&format!(
            "{{{{ {}1{} }}}}",
            "(".repeat(depth),
            ")".repeat(depth)
        ));
        exercise(&format!(
            "{{{{ {}1{} }}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        ));
        exercise(&format!("{{{{ {} }}}}", vec!["1"; depth].join(" + ")));
        exercise(&format!("{{{{ 1{} }}}}", " | upper".repeat(depth)));
        exercise(&format!("{{{{ {}1 }}}}", "not ".repeat(depth)));
        exercise(&format!("{{{{ {}1 }}}}", "-".repeat(depth)));
        exercise(&format!("{{{{ \"{}\" }}}}", "#{\"".repeat(depth)));
        exercise(&"{% if true %}".repeat(depth));
        exercise(&format!(
            "{}x{}",
            "{% if true %}".repeat(depth),
            "{% endif %}".repeat(depth)
        ));
        exercise(&format!("{{{{ inputs{} }}}}", ".m".repeat(depth)));
    }
}
