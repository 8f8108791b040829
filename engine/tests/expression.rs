//! Behaviour of Pebble expressions as Kestra renders them, through the
//! public API only.

use std::cell::Cell;
use std::collections::HashMap;

use peregrine_engine::expression::{
    Context, Error, JsonContext, LazyObject, Property, Scope, Template,
};
use serde_json::{Value, json};

fn vars() -> Value {
    json!({
        "inputs": {
            "name": "ada lovelace",
            "n": 3,
            "neg": -4,
            "f": 1.5,
            "zero": 0,
            "list": [1, 2, 3],
            "words": ["b", "a", "c"],
            "empty": "",
            "blank": "   ",
            "map": {"a": 1, "b": null, "c": {"d": "deep"}},
            "json": "{\"k\": [1, 2]}",
            "date": "2013-09-08T16:19:12.123456+01:00",
            "nothing": null
        },
        "vars": {"env": "prod"},
        "execution": {"id": "exec1", "startDate": "2024-01-02T03:04:05Z"},
        "flow": {"id": "f", "namespace": "company.team", "revision": 2},
        "task": {"id": "t1", "type": "io.kestra.plugin.core.log.Log"},
        "labels": {"team": "data"},
        "trigger": {"date": "2024-01-02T00:00:00Z"}
    })
}

fn compile(t: &str) -> Template {
    match Template::compile(t) {
        Ok(t) => t,
        Err(e) => panic!("`{t}` does not compile: {e}"),
    }
}

fn render_in(t: &str, ctx: &dyn Context) -> Value {
    match compile(t).render(ctx) {
        Ok(v) => v,
        Err(e) => panic!("`{t}` does not render: {e}"),
    }
}

fn render(t: &str) -> Value {
    let v = vars();
    render_in(t, &JsonContext::new(&v))
}

fn text(t: &str) -> String {
    let v = vars();
    match compile(t).render_string(&JsonContext::new(&v)) {
        Ok(s) => s,
        Err(e) => panic!("`{t}` does not render: {e}"),
    }
}

fn error(t: &str) -> Error {
    let v = vars();
    let template = match Template::compile(t) {
        Ok(template) => template,
        Err(e) => return e,
    };
    match template.render(&JsonContext::new(&v)) {
        Ok(value) => panic!("`{t}` rendered {value} instead of failing"),
        Err(e) => e,
    }
}

fn fails_with(t: &str, needle: &str) {
    let e = error(t);
    assert!(
        e.message.contains(needle),
        "`{t}` failed with `{}`, expected `{needle}`",
        e.message
    );
}

// ---------------------------------------------------------------- rendering

#[test]
fn a_lone_expression_keeps_its_type() {
    assert_eq!(render("{{ inputs.n }}"), json!(3));
    assert_eq!(render("{{ inputs.f }}"), json!(1.5));
    assert_eq!(render("{{ inputs.list }}"), json!([1, 2, 3]));
    assert_eq!(
        render("{{ inputs.map }}"),
        json!({"a": 1, "b": null, "c": {"d": "deep"}})
    );
    assert_eq!(render("{{ inputs.n > 1 }}"), json!(true));
    assert_eq!(render("{{ inputs.nothing }}"), Value::Null);
    assert_eq!(render("{{ inputs.name }}"), json!("ada lovelace"));
    // Whitespace around the expression (a YAML block scalar's newline) keeps it typed.
    assert_eq!(render("  {{ inputs.list }}\n"), json!([1, 2, 3]));
    assert!(compile("{{ a }}\n").is_typed());
    assert!(!compile("x{{ a }}").is_typed());
    assert!(!compile("{{ a }}{{ b }}").is_typed());
}

#[test]
fn text_templates_render_maps_as_json_and_null_as_nothing() {
    assert_eq!(render("n={{ inputs.n }}"), json!("n=3"));
    assert_eq!(
        render("m={{ inputs.map }}"),
        json!("m={\"a\":1,\"b\":null,\"c\":{\"d\":\"deep\"}}")
    );
    assert_eq!(render("l={{ inputs.list }}"), json!("l=[1,2,3]"));
    assert_eq!(render("[{{ inputs.nothing }}]"), json!("[]"));
    assert_eq!(
        render("{{ inputs.f }}/{{ 2.0 }}/{{ 1.0 is null }}"),
        json!("1.5/2.0/false")
    );
    assert_eq!(text("{{ inputs.list }}"), "[1,2,3]");
}

#[test]
fn templates_without_tags_are_static() {
    let t = compile("just text { not a tag }");
    assert!(t.is_static());
    assert_eq!(t.source(), "just text { not a tag }");
    assert_eq!(
        render("just text { not a tag }"),
        json!("just text { not a tag }")
    );
    assert!(!compile("{{ 1 }}").is_static());
}

#[test]
fn comments_raw_and_whitespace_control() {
    assert_eq!(text("a{# hidden #}b"), "ab");
    assert_eq!(text("a {{- inputs.n -}} b"), "a3b");
    assert_eq!(text("a  {%- if true -%}  x  {%- endif -%}  b"), "axb");
    assert_eq!(text("a\n{#- c -#}\nb"), "ab");
    assert_eq!(
        text("{% raw %}{{ not rendered }}{% endraw %}"),
        "{{ not rendered }}"
    );
    assert_eq!(text("{% verbatim %}{% if %}{% endverbatim %}"), "{% if %}");
    // No newline trimming after tags (Kestra turns it off).
    assert_eq!(text("{% if true %}\nx\n{% endif %}\n"), "\nx\n\n");
}

// --------------------------------------------------- variables, strict mode

#[test]
fn kestra_variables_read_through() {
    assert_eq!(render("{{ execution.id }}"), json!("exec1"));
    assert_eq!(
        render("{{ flow.namespace }}.{{ flow.id }}@{{ flow.revision }}"),
        json!("company.team.f@2")
    );
    assert_eq!(
        render("{{ task.type }}"),
        json!("io.kestra.plugin.core.log.Log")
    );
    assert_eq!(render("{{ labels.team }}"), json!("data"));
    assert_eq!(render("{{ vars.env }}"), json!("prod"));
    assert_eq!(render("{{ trigger.date }}"), json!("2024-01-02T00:00:00Z"));
    assert_eq!(render("{{ inputs['map']['c'].d }}"), json!("deep"));
}

#[test]
fn undefined_variables_and_attributes_are_errors() {
    let e = error("{{ nope }}");
    assert_eq!(e.message, "Unable to find `nope` used in the expression");
    assert_eq!((e.line, e.column), (1, 4));
    assert_eq!(e.template, "{{ nope }}");
    assert_eq!(
        e.to_string(),
        "Unable to find `nope` used in the expression at 1:4 in `{{ nope }}`"
    );
    let e = error("line one\n  and {{ inputs.map.zz }}");
    assert_eq!(e.message, "Unable to find `zz` used in the expression");
    assert_eq!((e.line, e.column), (2, 21));
    fails_with("{{ inputs.list[3] }}", "Unable to find `3`");
    fails_with("{{ inputs.list[-1] }}", "Unable to find `-1`");
    fails_with("{{ inputs.n.x }}", "Unable to find `x`");
    // An attribute of null is an error; a null attribute of a map is null.
    fails_with("{{ inputs.map.b.x }}", "Unable to find `x`");
    assert_eq!(render("{{ inputs.map.b }}"), Value::Null);
    // Unknown filters, tests and functions compile, and fail when evaluated.
    fails_with("{{ 1 | nosuch }}", "Filter [nosuch] does not exist.");
    fails_with("{{ 1 is nosuch }}", "Test [nosuch] does not exist.");
    fails_with("{{ nosuch() }}", "[nosuch] does not exist.");
    assert_eq!(render("{{ false ? (1 | nosuch) : 2 }}"), json!(2));
    fails_with("{{ inputs.name.length() }}", "not supported");
}

#[test]
fn null_coalescing_catches_undefined_and_null() {
    assert_eq!(render("{{ nope ?? 'd' }}"), json!("d"));
    assert_eq!(render("{{ inputs.map.zz ?? 'd' }}"), json!("d"));
    assert_eq!(render("{{ inputs.nothing ?? 'd' }}"), json!("d"));
    assert_eq!(render("{{ inputs.map.b.deeper ?? 'd' }}"), json!("d"));
    assert_eq!(render("{{ inputs.list[9] ?? 'd' }}"), json!("d"));
    assert_eq!(render("{{ inputs.n ?? 'd' }}"), json!(3));
    assert_eq!(render("{{ inputs.empty ?? 'd' }}"), json!(""));
    assert_eq!(render("{{ a ?? b ?? inputs.n }}"), json!(3));
    assert_eq!(
        render("{{ inputs.map ?? 'd' }}"),
        json!({"a": 1, "b": null, "c": {"d": "deep"}})
    );
    fails_with("{{ nope ?? nope2 }}", "Unable to find `nope2`");
    // Only "not found" is caught: other failures go through.
    fails_with("{{ (1 / 0) ?? 2 }}", "/ by zero");
    // `??` binds tighter than filters and comparisons.
    assert_eq!(render("{{ nope ?? 'x' | upper }}"), json!("X"));
    assert_eq!(render("{{ nope ?? 'x' == 'x' }}"), json!(true));
}

#[test]
fn undefined_coalescing_keeps_null() {
    assert_eq!(render("{{ inputs.nothing ??? 'd' }}"), Value::Null);
    assert_eq!(render("{{ nope ??? 'd' }}"), json!("d"));
    assert_eq!(render("[{{ null ??? 'IS NULL' }}]"), json!("[]"));
}

#[test]
fn default_and_is_defined_guard_undefined() {
    assert_eq!(render("{{ nope | default('d') }}"), json!("d"));
    assert_eq!(render("{{ inputs.map.zz | default('d') }}"), json!("d"));
    assert_eq!(render("{{ inputs.empty | default('d') }}"), json!("d"));
    assert_eq!(render("{{ inputs.blank | default('d') }}"), json!("d"));
    assert_eq!(render("{{ inputs.nothing | default('d') }}"), json!("d"));
    assert_eq!(render("{{ [] | default('d') }}"), json!("d"));
    assert_eq!(render("{{ inputs.zero | default('d') }}"), json!(0));
    assert_eq!(
        render("{{ inputs.name | default('d') }}"),
        json!("ada lovelace")
    );
    assert_eq!(render("{{ nope is defined }}"), json!(false));
    assert_eq!(render("{{ inputs.map.zz is defined }}"), json!(false));
    assert_eq!(render("{{ inputs.nothing is defined }}"), json!(false));
    assert_eq!(render("{{ inputs.n is defined }}"), json!(true));
    assert_eq!(render("{{ nope is not defined }}"), json!(true));
    assert_eq!(render("{{ nope is defined ? nope : inputs.n }}"), json!(3));
    fails_with("{{ nope is defined ? nope : nope2 }}", "nope2");
    // Like Pebble, only `defined` tolerates an undefined operand.
    fails_with("{{ nope is null }}", "Unable to find `nope`");
}

// ------------------------------------------------------- ForEach and lazies

/// Task outputs resolved on demand, counting whole materialisations.
#[derive(Debug, Default)]
struct Outputs {
    by_task: HashMap<String, Value>,
    materialised: Cell<usize>,
}

impl LazyObject for Outputs {
    fn get(&self, key: &str) -> Option<Scope<'_>> {
        self.by_task.get(key).map(Scope::Json)
    }

    fn to_json(&self) -> Value {
        self.materialised.set(self.materialised.get() + 1);
        Value::Object(
            self.by_task
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }
}

#[derive(Debug)]
struct ExecutionContext {
    outputs: Outputs,
    vars: Value,
}

impl Context for ExecutionContext {
    fn root(&self, name: &str) -> Option<Scope<'_>> {
        match name {
            "outputs" => Some(Scope::Lazy(&self.outputs)),
            "parent" => self.vars.get("parents")?.get(0).map(Scope::Json),
            // Built per lookup, as an executor may do for cheap values.
            "taskrun" => Some(Scope::Owned(self.vars.get("taskrun")?.clone())),
            other => self.vars.get(other).map(Scope::Json),
        }
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::UNIX_EPOCH
    }
}

fn foreach_context() -> ExecutionContext {
    let mut by_task = HashMap::new();
    by_task.insert(
        "t".to_owned(),
        json!({
            "a": {"x": {"value": "ax"}, "y": {"value": "ay"}},
            "b": {"x": {"value": "bx"}},
            "1": {"value": "one"}
        }),
    );
    by_task.insert("transform".to_owned(), json!({"value": {"k": [1, 2]}}));
    ExecutionContext {
        outputs: Outputs {
            by_task,
            materialised: Cell::new(0),
        },
        vars: json!({
            "taskrun": {"id": "tr", "value": "y", "iteration": 0, "startDate": "2024-01-01T00:00:00Z", "attemptsCount": 1},
            "parents": [
                {"taskrun": {"value": "a"}},
                {"taskrun": {"value": "outer"}}
            ]
        }),
    }
}

#[test]
fn foreach_value_chains_read_in_place() {
    let ctx = foreach_context();
    assert_eq!(
        render_in("{{ outputs.t['a']['x'].value }}", &ctx),
        json!("ax")
    );
    assert_eq!(render_in("{{ outputs.t.b.x.value }}", &ctx), json!("bx"));
    assert_eq!(
        render_in(
            "{{ outputs.t[parent.taskrun.value][taskrun.value].value }}",
            &ctx
        ),
        json!("ay")
    );
    assert_eq!(render_in("{{ outputs.t[1].value }}", &ctx), json!("one"));
    assert_eq!(
        render_in("{{ parents[1].taskrun.value }}", &ctx),
        json!("outer")
    );
    assert_eq!(
        render_in("{{ parents[0].taskrun.value }}", &ctx),
        json!("a")
    );
    assert_eq!(
        render_in("{{ taskrun.value }}-{{ taskrun.attemptsCount }}", &ctx),
        json!("y-1")
    );
    assert_eq!(
        render_in("{{ outputs.transform.value }}", &ctx),
        json!({"k": [1, 2]})
    );
    assert_eq!(
        render_in("{{ outputs.t['zz'] ?? 'none' }}", &ctx),
        json!("none")
    );
    assert_eq!(render_in("{{ outputs.t is defined }}", &ctx), json!(true));
    assert_eq!(
        render_in("{{ outputs.nope is defined }}", &ctx),
        json!(false)
    );
    // None of this built the whole output map.
    assert_eq!(ctx.outputs.materialised.get(), 0);
    // Rendering the lazy object whole builds it, once.
    assert_eq!(
        render_in("{{ outputs.transform.value.k | length }}", &ctx),
        json!(2)
    );
    let whole = render_in("{{ outputs }}", &ctx);
    assert_eq!(whole["transform"], json!({"value": {"k": [1, 2]}}));
    assert_eq!(ctx.outputs.materialised.get(), 1);
    let e = compile("{{ outputs.t.c.x }}")
        .render(&ctx)
        .expect_err("missing");
    assert_eq!(e.message, "Unable to find `c` used in the expression");
}

#[test]
fn current_each_output_walks_the_parent_values() {
    let mut ctx = foreach_context();
    ctx.vars["parents"] = json!([{"taskrun": {"value": "a"}}]);
    assert_eq!(
        render_in("{{ currentEachOutput(outputs.t).value }}", &ctx),
        json!("ay")
    );
    ctx.vars["parents"] = json!([]);
    ctx.vars["taskrun"]["value"] = json!("1");
    assert_eq!(
        render_in("{{ currentEachOutput(outputs.t).value }}", &ctx),
        json!("one")
    );
    assert_eq!(ctx.outputs.materialised.get(), 0);
    // Two levels: parents innermost first.
    let nested = json!({
        "outputs": {"t": {"o": {"i": {"leaf": {"v": 42}}}}},
        "parents": [{"taskrun": {"value": "i"}}, {"taskrun": {"value": "o"}}],
        "taskrun": {"value": "leaf"}
    });
    assert_eq!(
        render_in(
            "{{ currentEachOutput(outputs.t).v }}",
            &JsonContext::new(&nested)
        ),
        json!(42)
    );
    let e = compile("{{ currentEachOutput('x') }}")
        .render(&JsonContext::new(&nested))
        .expect_err("not a map");
    assert!(e.message.contains("type map"), "{}", e.message);
}

// ----------------------------------------------------------------- operators

#[test]
fn arithmetic_keeps_longs_and_doubles_apart() {
    assert_eq!(render("{{ 1 + 2 * 3 }}"), json!(7));
    assert_eq!(render("{{ (1 + 2) * 3 }}"), json!(9));
    assert_eq!(render("{{ 10 / 3 }}"), json!(3));
    assert_eq!(render("{{ 10 / 4.0 }}"), json!(2.5));
    assert_eq!(render("{{ 10 % 3 }}"), json!(1));
    assert_eq!(render("{{ inputs.f * 2 }}"), json!(3.0));
    assert_eq!(render("{{ -inputs.n + 1 }}"), json!(-2));
    assert_eq!(render("{{ 1 - 2 - 3 }}"), json!(-4));
    assert_eq!(render("{{ inputs.n + 'x' }}"), json!("3x"));
    assert_eq!(render("{{ inputs.list + 4 }}"), json!([1, 2, 3, 4]));
    assert_eq!(render("{{ inputs.list - [2] }}"), json!([1, 3]));
    fails_with("{{ 1 / 0 }}", "/ by zero");
    fails_with("{{ 1 % 0 }}", "/ by zero");
    fails_with("{{ 1.0 / 0 }}", "not a finite number");
    fails_with(
        "{{ inputs.map * 2 }}",
        "invalid operands for mathematical operation [MULTIPLICATION]",
    );
    fails_with("{{ -inputs.name }}", "invalid operands");
}

#[test]
fn comparisons_are_numeric_and_equality_is_structural() {
    assert_eq!(render("{{ 2 > 1 }}"), json!(true));
    assert_eq!(render("{{ 2 >= 2.0 }}"), json!(true));
    assert_eq!(render("{{ 1 < inputs.f }}"), json!(true));
    assert_eq!(render("{{ 1 <= 0 }}"), json!(false));
    assert_eq!(render("{{ inputs.nothing > 1 }}"), json!(false));
    assert_eq!(render("{{ 1 == 1.0 }}"), json!(true));
    assert_eq!(render("{{ '1' == 1 }}"), json!(false));
    assert_eq!(render("{{ inputs.name == 'ada lovelace' }}"), json!(true));
    assert_eq!(render("{{ inputs.name equals 'x' }}"), json!(false));
    assert_eq!(render("{{ inputs.list == [1, 2, 3] }}"), json!(true));
    assert_eq!(render("{{ inputs.nothing == null }}"), json!(true));
    assert_eq!(render("{{ 1 != 2 }}"), json!(true));
    fails_with(
        "{{ 'a' < 'b' }}",
        "invalid operands for mathematical comparison [LESS_THAN]",
    );
}

#[test]
fn logic_short_circuits_and_refuses_null() {
    assert_eq!(render("{{ true and false }}"), json!(false));
    assert_eq!(render("{{ false or true }}"), json!(true));
    assert_eq!(render("{{ false and nope }}"), json!(false));
    assert_eq!(render("{{ true or nope }}"), json!(true));
    assert_eq!(render("{{ 1 and 'x' }}"), json!(true));
    assert_eq!(render("{{ 0 or '' }}"), json!(false));
    assert_eq!(render("{{ not false }}"), json!(true));
    assert_eq!(render("{{ not inputs.zero }}"), json!(true));
    assert_eq!(render("{{ not inputs.empty }}"), json!(true));
    assert_eq!(render("{{ not inputs.name }}"), json!(false));
    // `not` binds to its operand only, as in Pebble.
    assert_eq!(render("{{ not inputs.n == 3 }}"), json!(false));
    assert_eq!(render("{{ not (inputs.n == 3) }}"), json!(false));
    assert_eq!(render("{{ not (inputs.n == 4) }}"), json!(true));
    fails_with(
        "{{ inputs.nothing and true }}",
        "null value used in and operator",
    );
    fails_with("{{ not inputs.nothing }}", "null value given to not()");
    fails_with("{{ inputs.map and true }}", "Unsupported value type map");
}

#[test]
fn ternary_concat_contains_in() {
    assert_eq!(render("{{ inputs.n > 2 ? 'big' : 'small' }}"), json!("big"));
    assert_eq!(render("{{ inputs.nothing ? 'yes' : 'no' }}"), json!("no"));
    assert_eq!(render("{{ inputs.empty ? 'yes' : 'no' }}"), json!("no"));
    assert_eq!(render("{{ true ? inputs.list : 0 }}"), json!([1, 2, 3]));
    assert_eq!(
        render("{{ 'a' ~ 1 ~ inputs.nothing ~ true }}"),
        json!("a1true")
    );
    assert_eq!(render("{{ 'l=' ~ inputs.list }}"), json!("l=[1, 2, 3]"));
    assert_eq!(render("{{ 'm=' ~ {'a': 1} }}"), json!("m={a=1}"));
    assert_eq!(
        render("{{ \"#{inputs.name}: #{inputs.n + 1}\" }}"),
        json!("ada lovelace: 4")
    );
    assert_eq!(render("{{ inputs.list contains 2 }}"), json!(true));
    assert_eq!(render("{{ inputs.list contains 2.0 }}"), json!(true));
    assert_eq!(render("{{ inputs.list contains [1, 3] }}"), json!(true));
    assert_eq!(render("{{ inputs.list contains [1, 4] }}"), json!(false));
    assert_eq!(render("{{ inputs.map contains 'a' }}"), json!(true));
    assert_eq!(render("{{ inputs.map contains 'z' }}"), json!(false));
    assert_eq!(render("{{ inputs.name contains 'love' }}"), json!(true));
    assert_eq!(render("{{ inputs.nothing contains 'x' }}"), json!(false));
    assert_eq!(render("{{ 2 in inputs.list }}"), json!(true));
    assert_eq!(render("{{ 'z' in inputs.map }}"), json!(false));
    assert_eq!(render("{{ 'love' in inputs.name }}"), json!(true));
    fails_with("{{ 1 contains 1 }}", "Contains operator can only be used");
}

#[test]
fn list_and_map_literals() {
    assert_eq!(render("{{ [] }}"), json!([]));
    assert_eq!(render("{{ {} }}"), json!({}));
    assert_eq!(
        render("{{ {'a': 1, 'b': [inputs.n, 'x'], 2: null} }}"),
        json!({"a": 1, "b": [3, "x"], "2": null})
    );
    assert_eq!(render("{{ [1, [2, 3]][1][0] }}"), json!(2));
    assert_eq!(render("{{ {'k': 'v'}.k }}"), json!("v"));
    assert_eq!(text("{{ {'a': {'b': 1}} }}"), "{\"a\":{\"b\":1}}");
}

#[test]
fn ranges_are_inclusive() {
    assert_eq!(render("{{ 1..3 }}"), json!([1, 2, 3]));
    assert_eq!(render("{{ range(1, 3) }}"), json!([1, 2, 3]));
    assert_eq!(render("{{ range(0, 10, 5) }}"), json!([0, 5, 10]));
    assert_eq!(render("{{ range(5, 1, -2) }}"), json!([5, 3, 1]));
    assert_eq!(render("{{ range(3, 1) }}"), json!([]));
    assert_eq!(render("{{ range('a', 'c') }}"), json!(["a", "b", "c"]));
    fails_with("{{ range(1, 3, 0) }}", "different than 0");
    fails_with("{{ range(0, 100000000) }}", "more than");
    fails_with("{{ range('ab', 'c') }}", "length of 1");
}

// --------------------------------------------------------------------- tests

#[test]
fn tests_null_empty_json_even_odd() {
    assert_eq!(render("{{ inputs.nothing is null }}"), json!(true));
    assert_eq!(render("{{ inputs.n is null }}"), json!(false));
    assert_eq!(render("{{ inputs.n is not null }}"), json!(true));
    assert_eq!(render("{{ inputs.empty is empty }}"), json!(true));
    assert_eq!(render("{{ inputs.blank is empty }}"), json!(true));
    assert_eq!(render("{{ [] is empty }}"), json!(true));
    assert_eq!(render("{{ {} is empty }}"), json!(true));
    assert_eq!(render("{{ inputs.nothing is empty }}"), json!(true));
    assert_eq!(render("{{ inputs.list is empty }}"), json!(false));
    assert_eq!(render("{{ inputs.zero is empty }}"), json!(false));
    assert_eq!(render("{{ inputs.json is json }}"), json!(true));
    assert_eq!(render("{{ inputs.name is json }}"), json!(false));
    assert_eq!(render("{{ '[1,' is not json }}"), json!(true));
    fails_with("{{ inputs.n is json }}", "expects a string");
    assert_eq!(render("{{ inputs.n is odd }}"), json!(true));
    assert_eq!(render("{{ inputs.n is even }}"), json!(false));
    assert_eq!(render("{{ inputs.neg is even }}"), json!(true));
    assert_eq!(render("{{ 7 is not odd }}"), json!(false));
    fails_with("{{ inputs.nothing is even }}", "Can not pass null value");
    fails_with("{{ inputs.f is odd }}", "expects an integer");
    assert_eq!(render("{{ inputs.list is iterable }}"), json!(true));
    assert_eq!(render("{{ inputs.map is map }}"), json!(true));
}

// ------------------------------------------------------------------- filters

#[test]
fn string_filters() {
    assert_eq!(render("{{ inputs.name | upper }}"), json!("ADA LOVELACE"));
    assert_eq!(render("{{ 'ÉTÉ' | lower }}"), json!("été"));
    assert_eq!(render("{{ inputs.n | upper }}"), json!("3"));
    assert_eq!(
        render("{{ inputs.name | capitalize }}"),
        json!("Ada lovelace")
    );
    assert_eq!(render("{{ '  x y' | capitalize }}"), json!("  X y"));
    assert_eq!(render("{{ inputs.name | title }}"), json!("Ada Lovelace"));
    assert_eq!(render("{{ '  padded\n' | trim }}"), json!("padded"));
    assert_eq!(render("{{ inputs.nothing | upper }}"), Value::Null);
    fails_with("{{ inputs.n | trim }}", "expects a string");
    fails_with("{{ inputs.n | capitalize }}", "expects a string");
    assert_eq!(
        render("{{ 'Hello Wörld, été!' | slugify }}"),
        json!("hello-world-ete")
    );
    assert_eq!(render("{{ inputs.name | startsWith('ada') }}"), json!(true));
    assert_eq!(render("{{ inputs.name | endsWith('ada') }}"), json!(false));
    fails_with("{{ inputs.nothing | startsWith('a') }}", "null");
    assert_eq!(
        render("{{ 'a-b-c' | replace({'-': '+', 'a': 'A'}) }}"),
        json!("A+b+c")
    );
    assert_eq!(render("{{ 'a-b' | replace('-', '.') }}"), json!("a.b"));
    fails_with("{{ 'a' | replace }}", "replace_pairs");
    assert_eq!(
        render("{{ 'a,b,,c,,' | split(',') }}"),
        json!(["a", "b", "", "c"])
    );
    assert_eq!(render("{{ 'a,b,c' | split(',', 2) }}"), json!(["a", "b,c"]));
    assert_eq!(render("{{ 'a.b' | split('.') }}"), json!(["a", "b"]));
    fails_with("{{ 'a' | split }}", "missing delimiter");
    assert_eq!(render("{{ 'hello' | slice(1, 3) }}"), json!("el"));
    assert_eq!(render("{{ 'a.b.c' | substringBefore('.') }}"), json!("a"));
    assert_eq!(
        render("{{ 'a.b.c' | substringAfterLast('.') }}"),
        json!("c")
    );
    assert_eq!(render("{{ 'abcdefgh' | abbreviate(6) }}"), json!("abc..."));
}

#[test]
fn collection_filters() {
    assert_eq!(render("{{ inputs.list | length }}"), json!(3));
    assert_eq!(render("{{ inputs.map | length }}"), json!(3));
    assert_eq!(render("{{ 'été' | length }}"), json!(3));
    assert_eq!(render("{{ inputs.nothing | length }}"), json!(0));
    assert_eq!(render("{{ inputs.list | first }}"), json!(1));
    assert_eq!(render("{{ inputs.list | last }}"), json!(3));
    assert_eq!(render("{{ [] | first }}"), Value::Null);
    assert_eq!(render("{{ inputs.name | first }}"), json!("a"));
    assert_eq!(render("{{ inputs.name | last }}"), json!("e"));
    fails_with("{{ inputs.map | first }}", "expects a list or a string");
    assert_eq!(render("{{ inputs.list | join }}"), json!("123"));
    assert_eq!(render("{{ inputs.list | join(', ') }}"), json!("1, 2, 3"));
    assert_eq!(
        render("{{ [1, null, 'x'] | join('-') }}"),
        json!("1-null-x")
    );
    fails_with("{{ inputs.name | join(',') }}", "collection or an array");
    assert_eq!(render("{{ inputs.list | slice(1) }}"), json!([2, 3]));
    assert_eq!(render("{{ inputs.list | slice(0, 2) }}"), json!([1, 2]));
    fails_with(
        "{{ inputs.list | slice(0, 9) }}",
        "toIndex must be smaller than input size: 3",
    );
    fails_with(
        "{{ inputs.list | slice(2, 1) }}",
        "toIndex must be greater than fromIndex",
    );
    assert_eq!(render("{{ inputs.map | keys }}"), json!(["a", "b", "c"]));
    assert_eq!(render("{{ inputs.list | keys }}"), json!([0, 1, 2]));
    assert_eq!(
        render("{{ inputs.map | values }}"),
        json!([1, null, {"d": "deep"}])
    );
    fails_with("{{ inputs.list | values }}", "can only be applied to Map");
    fails_with("{{ 1 | keys }}", "can only be applied to List, Map, Array");
    assert_eq!(render("{{ inputs.words | sort }}"), json!(["a", "b", "c"]));
    assert_eq!(render("{{ inputs.words | rsort }}"), json!(["c", "b", "a"]));
    assert_eq!(render("{{ inputs.list | reverse }}"), json!([3, 2, 1]));
    assert_eq!(render("{{ [1, [2, 3]] | flatten }}"), json!([1, 2, 3]));
    assert_eq!(render("{{ [1, 2, 3] | chunk(2) }}"), json!([[1, 2], [3]]));
    assert_eq!(
        render("{{ {'a': 1} | merge({'b': 2}) }}"),
        json!({"a": 1, "b": 2})
    );
}

#[test]
fn number_filters() {
    assert_eq!(render("{{ '42' | number }}"), json!(42));
    assert_eq!(render("{{ '4.5' | number }}"), json!(4.5));
    assert_eq!(render("{{ '42' | number('DOUBLE') }}"), json!(42.0));
    assert_eq!(render("{{ '0x1F' | number }}"), json!(31));
    fails_with("{{ 'x1' | number }}", "not a valid number");
    fails_with("{{ 42 | number }}", "can only be applied to String");
    assert_eq!(render("{{ inputs.neg | abs }}"), json!(4));
    assert_eq!(render("{{ -2.5 | abs }}"), json!(2.5));
    fails_with(
        "{{ inputs.nothing | abs }}",
        "Can not pass null value to \"abs\" filter.",
    );
    fails_with("{{ 'x' | abs }}", "does require as input a number");
    assert_eq!(render("{{ 2.5 | round }}"), json!(3));
    assert_eq!(render("{{ 2.71828 | round(2) }}"), json!(2.72));
    assert_eq!(render("{{ 3.141 | round(2, 'ceil') }}"), json!(3.15));
    assert_eq!(render("{{ 7 | round }}"), json!(7));
}

#[test]
fn json_filters_and_functions() {
    assert_eq!(
        render("{{ inputs.map | toJson }}"),
        json!("{\"a\":1,\"b\":null,\"c\":{\"d\":\"deep\"}}")
    );
    assert_eq!(
        render("{{ inputs.name | json }}"),
        json!("\"ada lovelace\"")
    );
    assert_eq!(render("{{ inputs.nothing | toJson }}"), json!("null"));
    assert_eq!(render("{{ fromJson(inputs.json).k[1] }}"), json!(2));
    assert_eq!(render("{{ json('[1]') }}"), json!([1]));
    assert_eq!(render("{{ fromJson(inputs.nothing) }}"), Value::Null);
    fails_with("{{ fromJson('{') }}", "Invalid json");
    fails_with("{{ fromJson(1) }}", "with type string");
}

#[test]
fn jq_runs_on_values_and_json_strings() {
    assert_eq!(render("{{ inputs.list | jq('.[0]') }}"), json!([1]));
    assert_eq!(render("{{ [1, 2, 3] | jq('.[0]') | first }}"), json!(1));
    assert_eq!(
        render("{{ inputs.json | jq('.k | add') | first }}"),
        json!(3)
    );
    assert_eq!(
        render("{{ inputs.map | jq('.c.d') | first }}"),
        json!("deep")
    );
    assert_eq!(
        render("{{ inputs.list | jq('.[] | select(. > 1)') }}"),
        json!([2, 3])
    );
    let program = "'.[' ~ '0]'";
    assert_eq!(
        render(&format!("{{{{ inputs.list | jq({program}) }}}}")),
        json!([1])
    );
    fails_with("{{ inputs.map | jq('.a.b') }}", "jq");
    fails_with("{{ 'not json' | jq('.') }}", "Unable to parse jq value");
    // A literal program is checked when the template compiles.
    assert!(Template::compile("{{ x | jq('.[') }}").is_err());
}

#[test]
fn date_filters() {
    assert_eq!(
        render("{{ inputs.date | date('yyyy-MM-dd') }}"),
        json!("2013-09-08")
    );
    assert_eq!(
        render("{{ inputs.date | date }}"),
        json!("2013-09-08T15:19:12.123456Z")
    );
    assert_eq!(
        render("{{ inputs.date | date(\"iso\", timeZone=\"+02:00\") }}"),
        json!("2013-09-08T17:19:12.123456+02:00")
    );
    assert_eq!(
        render("{{ inputs.date | date(format='HH:mm:ss') }}"),
        json!("15:19:12")
    );
    assert_eq!(
        render("{{ 1378653552 | date('iso_sec') }}"),
        json!("2013-09-08T15:19:12Z")
    );
    assert_eq!(
        render("{{ 'July 24, 2001' | date('yyyy-MM-dd', existingFormat='MMMM dd, yyyy') }}"),
        json!("2001-07-24")
    );
    assert_eq!(
        render("{{ inputs.date | dateAdd(-1, 'DAYS', format='iso_local_date') }}"),
        json!("2013-09-07")
    );
    assert_eq!(render("{{ inputs.date | timestamp }}"), json!(1378653552));
    assert_eq!(
        render("{{ (inputs.date | timestamp) > (inputs.date | dateAdd(-1, 'DAYS') | timestamp) }}"),
        json!(true)
    );
    let year = render("{{ now(format='yyyy') }}");
    let year = year
        .as_str()
        .and_then(|y| y.parse::<i32>().ok())
        .expect("a year");
    assert!((2024..3000).contains(&year));
    fails_with("{{ 'garbage' | date }}", "could not be parsed");
    fails_with(
        "{{ inputs.date | date(timeZone='Mars/Olympus') }}",
        "Unknown time zone",
    );
    fails_with("{{ inputs.date | dateAdd(1, 'EONS') }}", "Unknown unit");
}

#[test]
fn max_min() {
    assert_eq!(render("{{ max(1, 5, 3) }}"), json!(5));
    assert_eq!(render("{{ min(4, inputs.f, 3) }}"), json!(1.5));
    fails_with("{{ max(1, 'a') }}", "invalid operands");
}

// -------------------------------------------------------------------- blocks

#[test]
fn if_elseif_else() {
    let t = "{% if inputs.n > 5 %}big{% elseif inputs.n > 2 %}mid{% else %}small{% endif %}";
    assert_eq!(text(t), "mid");
    assert_eq!(text("{% if inputs.empty %}y{% else %}n{% endif %}"), "n");
    assert_eq!(text("{% if inputs.name %}y{% endif %}"), "y");
    assert_eq!(text("{% if 0 %}y{% endif %}"), "");
    assert_eq!(text("{% if nope is defined %}y{% else %}n{% endif %}"), "n");
    fails_with(
        "{% if inputs.nothing %}y{% endif %}",
        "null value given to if statement",
    );
    fails_with(
        "{% if inputs.list %}y{% endif %}",
        "Unsupported value type list",
    );
    fails_with("{% if nope %}y{% endif %}", "Unable to find `nope`");
}

#[test]
fn for_loops() {
    assert_eq!(
        text(
            "{% for x in inputs.list %}{{ loop.index }}/{{ loop.revindex }}/{{ loop.length }}:{{ x }}{% if not loop.last %}, {% endif %}{% endfor %}"
        ),
        "0/2/3:1, 1/1/3:2, 2/0/3:3"
    );
    assert_eq!(
        text("{% for x in [] %}x{% else %}empty{% endfor %}"),
        "empty"
    );
    assert_eq!(
        text("{% for x in inputs.nothing %}x{% else %}empty{% endfor %}"),
        ""
    );
    assert_eq!(
        text("{% for e in {'a': 1, 'b': 2} %}{{ e.key }}={{ e.value }};{% endfor %}"),
        "a=1;b=2;"
    );
    assert_eq!(
        text("{% for i in 1..3 %}{% for j in range(1, i) %}{{ j }}{% endfor %}|{% endfor %}"),
        "1|12|123|"
    );
    assert_eq!(
        text("{% for x in inputs.list %}{% if loop.first %}first{% endif %}{% endfor %}"),
        "first"
    );
    // The loop variable is gone after the loop.
    fails_with(
        "{% for x in [1] %}{% endfor %}{{ x }}",
        "Unable to find `x`",
    );
    fails_with(
        "{% for x in inputs.name %}{% endfor %}",
        "Not an iterable object",
    );
    fails_with(
        "{% for i in range(1, 100000) %}{% for j in range(1, 100) %}{% endfor %}{% endfor %}",
        "Too many loop iterations",
    );
}

#[test]
fn set_assigns_variables() {
    assert_eq!(text("{% set x = inputs.n * 2 %}{{ x }}"), "6");
    assert_eq!(text("{% set x = 1 %}{% set x = x + 1 %}{{ x }}"), "2");
    assert_eq!(text("{% set m = {'a': [1, 2]} %}{{ m.a[1] }}"), "2");
    // An outer variable updated in a loop keeps the update.
    assert_eq!(
        text(
            "{% set total = 0 %}{% for x in inputs.list %}{% set total = total + x %}{% endfor %}{{ total }}"
        ),
        "6"
    );
    // A variable first set in a loop does not outlive it.
    fails_with(
        "{% for x in [1] %}{% set inner = 1 %}{% endfor %}{{ inner }}",
        "inner",
    );
    // Doubling a string cannot exhaust memory.
    fails_with(
        "{% set s = 'xxxxxxxxxxxxxxxx' %}{% for i in range(1, 40) %}{% set s = s ~ s %}{% endfor %}",
        "too large",
    );
}

// ------------------------------------------------------------------ syntax

#[test]
fn syntax_errors_have_positions() {
    let e = Template::compile("ok {{ 1 + }}").expect_err("incomplete");
    assert_eq!((e.line, e.column), (1, 4));
    let e = Template::compile("a\nb {{ x ) }}").expect_err("stray paren");
    assert_eq!((e.line, e.column), (2, 8));
    let e = Template::compile("{% if x %}").expect_err("unclosed");
    assert!(e.message.contains("endif"), "{}", e.message);
    assert!(Template::compile("{{ }}").is_err());
    assert!(Template::compile("{% endfor %}").is_err());
    assert!(Template::compile("{% include 'x' %}").is_err());
    assert!(Template::compile("{{ 'abc }}").is_err());
    assert!(Template::compile("{{ a | date(nope=1) }}").is_err());
}

// ---------------------------------------------------------------- properties

#[test]
fn properties_render_every_string_and_keep_static_parts() {
    let raw = json!({
        "uri": "https://example.com/{{ inputs.name | slugify }}",
        "count": "{{ inputs.n }}",
        "static": "no template here",
        "nested": [{"v": "{{ inputs.list }}"}, 7, true, null],
        "{{ vars.env }}_key": "k",
        "untouched": {"a": [1, 2, {"b": "plain"}]}
    });
    let p = Property::compile(&raw).expect("compiles");
    assert!(!p.is_static());
    let v = vars();
    let out = p.render(&JsonContext::new(&v)).expect("renders");
    assert_eq!(
        out,
        json!({
            "uri": "https://example.com/ada-lovelace",
            "count": 3,
            "static": "no template here",
            "nested": [{"v": [1, 2, 3]}, 7, true, null],
            "prod_key": "k",
            "untouched": {"a": [1, 2, {"b": "plain"}]}
        })
    );
    let fixed = Property::compile(&json!({"a": ["x", 1]})).expect("compiles");
    assert!(fixed.is_static());
    assert_eq!(
        fixed.render(&JsonContext::new(&v)).expect("renders"),
        json!({"a": ["x", 1]})
    );
    assert!(Property::compile(&json!({"bad": "{{ 1 + }}"})).is_err());
    let failing = Property::compile(&json!(["{{ nope }}"])).expect("compiles");
    assert!(failing.render(&JsonContext::new(&v)).is_err());
}

#[test]
fn compiled_templates_are_shareable() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Template>();
    assert_send_sync::<Property>();
}

#[test]
fn render_functions_render_variables_holding_templates() {
    let v = json!({
        "first": "1",
        "second": "{{ first }}",
        "third": "{{ second }}",
        "map": {"k": "{{ third }}"},
        "list": ["{{ third }}", 2],
        "loop": "{{ render(loop) }}",
        "bad": "{{ nope }}",
        "inputs": {"start_date": null},
        "vars": {"start": "{{ inputs.start_date ?? '2024-03-31' | dateAdd(-1, 'MONTHS') | date('yyyy-MM-dd') }}"}
    });
    let ctx = JsonContext::new(&v);
    assert_eq!(render_in("{{ third }}", &ctx), json!("{{ second }}"));
    assert_eq!(render_in("{{ render(third) }}", &ctx), json!("1"));
    assert_eq!(
        render_in("{{ render(third, recursive=false) }}", &ctx),
        json!("{{ first }}")
    );
    assert_eq!(
        render_in("{{ renderOnce(third) }}", &ctx),
        json!("{{ first }}")
    );
    assert_eq!(render_in("{{ render(map) }}", &ctx), json!({"k": "1"}));
    assert_eq!(render_in("{{ render(list) }}", &ctx), json!(["1", 2]));
    // Kestra's documented pattern for optional date inputs.
    assert_eq!(
        render_in("from {{ render(vars.start) }}", &ctx),
        json!("from 2024-02-29")
    );
    assert_eq!(
        render_in("{{ render(bad) ?? 'fallback' }}", &ctx),
        json!("fallback")
    );
    let e = compile("{{ render(loop) }}")
        .render(&ctx)
        .expect_err("self-reference");
    assert!(
        e.message.contains("Too many rendering attempts"),
        "{}",
        e.message
    );
}

#[test]
fn null_coalescing_with_filters_as_kestra_documents() {
    let v = json!({"inputs": {"end_date": null}});
    let ctx = JsonContext::new(&v);
    let year = render_in("{{ inputs.end_date ?? now() | date('yyyy') }}", &ctx);
    assert!(
        year.as_str()
            .is_some_and(|y| y.len() == 4 && y.starts_with('2')),
        "{year}"
    );
    assert_eq!(
        render_in(
            "{{ inputs.end_date ?? '2024-01-15' | dateAdd(1, 'DAYS') | date('yyyy-MM-dd') }}",
            &ctx
        ),
        json!("2024-01-16")
    );
}
