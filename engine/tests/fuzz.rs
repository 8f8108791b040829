//! Fuzz targets of the flow parser and validator and of Pebble (lexer,
//! parser and renderer): whatever the bytes, an answer (`Ok` or `Err`) and
//! never a panic. Seeds and regressions are in `engine/fuzz/`; the runner
//! is `peregrine_testkit::fuzz` (`PEREGRINE_FUZZ_SECS` per target).

use std::path::Path;

use peregrine_engine::expression::{Budget, JsonContext, Template};
use peregrine_engine::flow::Flow;
use serde_json::json;

fn corpus(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(name)
}

#[test]
fn fuzz_flow_parser_and_validator() {
    let dictionary: &[&[u8]] = &[
        b"\n  - id: x\n    type: io.kestra.plugin.core.debug.Return\n    format: a\n",
        b"tasks:",
        b"inputs:",
        b"triggers:",
        b"errors:",
        b"type: io.kestra.plugin.core.flow.ForEach",
        b"type: io.kestra.plugin.core.flow.Parallel",
        b"type: io.kestra.plugin.core.flow.Subflow",
        b"{{ ",
        b" }}",
        b"&a ",
        b"*a",
        b"<<: ",
        b"!!binary ",
        b"- ",
        b": ",
        b"[",
        b"{",
        b"'",
        b"\"",
        b"~",
        b"\t",
    ];
    peregrine_testkit::fuzz::run("flows", &corpus("flows"), Vec::new(), dictionary, |bytes| {
        let source = String::from_utf8_lossy(bytes);
        let _ = Flow::parse(&source);
    });
}

#[test]
fn fuzz_pebble_lexer_parser_and_renderer() {
    let vars = json!({
        "inputs": {"s": "text", "n": 3, "l": [1, "a", null], "m": {"k": {"v": 1}}, "z": null},
        "outputs": {"t": {"a": {"x": {"value": 1}}}},
        "taskrun": {"value": "a"},
        "parents": [{"taskrun": {"value": "a"}}],
    });
    // A small budget: a mutation that loops is stopped, not waited for.
    let budget = Budget {
        steps: 200_000,
        output_bytes: 1 << 20,
        ..Budget::default()
    };
    let dictionary: &[&[u8]] = &[
        b"{{",
        b"}}",
        b"{%",
        b"%}",
        b"{#",
        b"#}",
        b"{%-",
        b"-%}",
        b" for x in ",
        b" endfor ",
        b" if ",
        b" endif ",
        b" set ",
        b"|",
        b"??",
        b"???",
        b"..",
        b"~",
        b"(",
        b")",
        b"[",
        b"]",
        b"jq('",
        b"')",
        b"render(",
        b"range(",
        b"date(",
        b"now()",
        b"json",
        b"inputs.",
        b"loop.",
        b"is ",
        b"not ",
        b"\"",
        b"'",
        b"\\",
    ];
    peregrine_testkit::fuzz::run(
        "pebble",
        &corpus("pebble"),
        Vec::new(),
        dictionary,
        |bytes| {
            let source = String::from_utf8_lossy(bytes);
            let ctx = JsonContext::new(&vars).with_budget(budget);
            if let Ok(template) = Template::compile(&source) {
                let _ = template.render(&ctx);
                let _ = template.render_string(&ctx);
            }
        },
    );
}
