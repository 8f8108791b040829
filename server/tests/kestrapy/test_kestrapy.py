"""Peregrine's HTTP API driven through Kestra's official Python client.

Every call goes through `kestrapy` 2.0.3 (its `KestraClient`, its API classes,
its request building and its pydantic models), against a running
`peregrine server` given by PEREGRINE_URL, PEREGRINE_USER and
PEREGRINE_PASSWORD. See README.md beside this file.

How strict, and why
-------------------
kestrapy does not fail when an answer does not match its models. Its API
classes (kestrapy/base_api.py; `api_client.py` is the legacy generator
client, which the 2.0 API classes no longer use) turn JSON into models in
`BaseApi._deserialize`:

* `Model.from_dict(data)` is tried first, which validates with pydantic;
* on ANY exception it falls back to `BaseApi._construct_model`, which builds
  the model with `model_construct()`: no validation at all, missing required
  fields simply absent, values that do not match kept raw;
* a non-object answer for a model type is returned as it came;
* `_json_list_request` wraps an object in a one-item list when a JSON array
  was expected;
* `_sse_stream` drops any event whose data is not JSON;
* some calls declare no model at all and return the raw JSON
  (`search_executions`, the outputs calls).

So a client that "works" proves nothing. This suite replaces those fallbacks
(see `strict_client` below) and validates every answer twice:

1. `Model.model_validate_json(text, strict=True)`: pydantic in strict mode on
   the JSON text. Strict JSON mode refuses coercions the lax mode performs
   (an integer or a date-only string for a datetime, "1" for an int, 1 for a
   bool, a wrong-case enum value); it still reads RFC 3339 strings as
   datetimes and enum values by their value, as JSON must. This is the
   strictest reading of the model that a correct JSON answer can pass.
   (`model_validate(dict, strict=True)` would be wrong: in Python mode strict
   refuses every ISO string for a datetime, which no JSON answer could pass.)
2. `Model.from_dict(data)`: the client's own path, minus the fallback, so
   the generated per-model hooks (field regexes, nested `from_dict`,
   `additional_properties`) run too.

Both must pass, for a JSON object (or a JSON array for list calls). Calls
that return raw JSON are validated against the model Kestra's OpenAPI names
for them (e.g. `PagedResultsApiLightExecution` for the executions search).
Fields the model does not declare are allowed (Kestra adds fields over time,
and models keep them in `additional_properties`); they are reported as
`UndeclaredFieldWarning`s in pytest's warnings summary, except on Task and
AbstractTrigger, whose plugin properties (`format`, `key`...) are by design
undeclared.

Setup calls and the call under test
-----------------------------------
A test of, say, kill must first create a flow and an execution. If those
answers do not validate, the test still fails, but only at the end: setup
calls run inside `setup_calls()`, where a validation failure is recorded and
the client's own lenient result is returned so that the test can go on to
the call it is about. The call under test is validated at once. A test that
fails lists first the failure of its own call, then (as notes) the setup
answers that did not validate.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import time
import uuid
import warnings
from typing import Any, Dict, List, Optional, Union, get_args, get_origin

import pytest
import requests
import sseclient
from pydantic import BaseModel, ValidationError

# The models print a harmless pydantic warning at import (a field named
# `validate` in an unrelated model); keep it out of every test's output.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import kestrapy  # noqa: F401
    from kestrapy import KestraClient
    from kestrapy.base_api import BaseApi
    from kestrapy.exceptions import ApiException, NotFoundException, UnauthorizedException
    from kestrapy.models.abstract_trigger import AbstractTrigger
    from kestrapy.models.execution import Execution
    from kestrapy.models.execution_controller_execution_response import (
        ExecutionControllerExecutionResponse,
    )
    from kestrapy.models.flow import Flow
    from kestrapy.models.cursor_or_offset_paged_results_log_entry import (
        CursorOrOffsetPagedResultsLogEntry,
    )
    from kestrapy.models.flow_with_source import FlowWithSource
    from kestrapy.models.kv_controller_api_delete_bulk_request import (
        KVControllerApiDeleteBulkRequest,
    )
    from kestrapy.models.kv_controller_api_delete_bulk_response import (
        KVControllerApiDeleteBulkResponse,
    )
    from kestrapy.models.kv_controller_kv_detail import KVControllerKvDetail
    from kestrapy.models.kv_entry import KVEntry
    from kestrapy.models.log_entry import LogEntry
    from kestrapy.models.metric_aggregations import MetricAggregations
    from kestrapy.models.paged_results_metric_entry import PagedResultsMetricEntry
    from kestrapy.models.paged_results_kv_entry import PagedResultsKVEntry
    from kestrapy.models.label import Label
    from kestrapy.models.output_controller_task_output_information import (
        OutputControllerTaskOutputInformation,
    )
    from kestrapy.models.paged_results_api_light_execution import (
        PagedResultsApiLightExecution,
    )
    from kestrapy.models.paged_results_flow import PagedResultsFlow
    from kestrapy.models.query_filter_field import QueryFilterField as F
    from kestrapy.models.task import Task
    from kestrapy.models.validate_constraint_violation import ValidateConstraintViolation
    from kestrapy.models.webhook_response import WebhookResponse
    from kestrapy.query import eq

TENANT = "main"
URL = os.environ.get("PEREGRINE_URL", "http://127.0.0.1:8080").rstrip("/")
USER = os.environ.get("PEREGRINE_USER") or None
PASSWORD = os.environ.get("PEREGRINE_PASSWORD") or None
# (connect, read) seconds: a hung server fails a test instead of the run.
TIMEOUT = (5, 60)
# How long an execution may take to reach the state a test waits for.
DEADLINE = 30.0
# KESTRAPY_REPORT_ALL=1: every rejected answer is reported at the end of its
# test, as setup answers always are, so that the behaviour checks after it
# run too. The test fails all the same; this only shows more per run.
REPORT_ALL = os.environ.get("KESTRAPY_REPORT_ALL", "") not in ("", "0")

# One id for the whole run: every namespace and flow id a test makes holds
# it, so runs never see each other's flows or executions.
RUN = uuid.uuid4().hex[:10]

TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"}

RETURN = "io.kestra.plugin.core.debug.Return"
LOG = "io.kestra.plugin.core.log.Log"
SLEEP = "io.kestra.plugin.core.flow.Sleep"
WEBHOOK = "io.kestra.plugin.core.trigger.Webhook"


# ---------------------------------------------------------------------------
# Strict validation
# ---------------------------------------------------------------------------


class StrictModelError(AssertionError):
    """An answer the client's model does not accept."""


class UndeclaredFieldWarning(UserWarning):
    """The server sent fields the client's model does not declare."""


# The last HTTP answer the client got (recorded by a session hook), to name
# the request in error messages and to check status codes.
_LAST: Dict[str, Optional[requests.Response]] = {"response": None}
# SSE events seen by the last stream: (event id, event name).
_SSE_SEEN: List[tuple] = []
# depth > 0 while inside setup_calls(); all: KESTRAPY_REPORT_ALL.
_DEFER = {"depth": 0, "all": REPORT_ALL}
# Validation failures of setup calls in the running test.
_DEFERRED: List[str] = []

_ORIGINAL_DESERIALIZE = BaseApi._deserialize


def _request_line() -> str:
    r = _LAST["response"]
    if r is None:
        return "(no request recorded)"
    return f"{r.request.method} {r.request.url} -> {r.status_code}"


def _validation_lines(errors: List[dict], limit: int = 30) -> List[str]:
    """One line per distinct problem; list indexes folded (`taskRunList[]`)."""
    counts: Dict[str, int] = {}
    for e in errors:
        loc = ""
        for part in e["loc"]:
            loc += "[]" if isinstance(part, int) else ("." if loc else "") + str(part)
        loc = loc or "(root)"
        shown = ""
        if e["type"] != "missing":
            text = json.dumps(e.get("input"), default=str)
            shown = f", got {text if len(text) <= 80 else text[:77] + '...'}"
        line = f"  {loc}: {e['msg']} [{e['type']}{shown}]"
        counts[line] = counts.get(line, 0) + 1
    lines = [line + (f" (x{n})" if n > 1 else "") for line, n in counts.items()]
    if len(lines) > limit:
        lines = lines[:limit] + [f"  ... and {len(lines) - limit} more"]
    return lines


def _walk_undeclared(obj: Any, path: str, found: Dict[str, List[str]]) -> None:
    if isinstance(obj, BaseModel):
        extra = getattr(obj, "additional_properties", None) or {}
        if extra and not isinstance(obj, (Task, AbstractTrigger)):
            found.setdefault(f"{type(obj).__name__} at {path or '(root)'}", []).extend(
                sorted(extra)
            )
        for name in type(obj).model_fields:
            if name == "additional_properties":
                continue
            field = type(obj).model_fields[name]
            _walk_undeclared(getattr(obj, name, None), f"{path}.{field.alias or name}".lstrip("."), found)
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            _walk_undeclared(item, f"{path}[{i}]", found)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, BaseModel):
                _walk_undeclared(v, f"{path}.{k}", found)


def _warn_undeclared(obj: BaseModel) -> None:
    found: Dict[str, List[str]] = {}
    _walk_undeclared(obj, "", found)
    # One warning per model type and field set: the same list index paths
    # repeat for every task run.
    seen = set()
    for where, keys in found.items():
        model = where.split(" at ")[0]
        at = re.sub(r"\[\d+\]", "[]", where.split(" at ")[1])
        key = (model, at, tuple(keys))
        if key in seen:
            continue
        seen.add(key)
        warnings.warn(
            UndeclaredFieldWarning(f"{model} at {at}: fields not in the model: {', '.join(keys)}"),
            stacklevel=2,
        )


def _is_one_of(tp: Any) -> bool:
    """A generated oneOf wrapper (OutputValue, PropertyDuration...): its
    JSON is one of several shapes, read by its own `from_json`."""
    return isinstance(tp, type) and issubclass(tp, BaseModel) and "actual_instance" in tp.model_fields


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is Union or (get_origin(tp) is not None and type(None) in get_args(tp)):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) != 1:
            return tp
        tp = args[0]
    return tp


def _through_one_of(model: type, loc: tuple) -> bool:
    """Whether an error location lies in (or is) a oneOf wrapper field."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if _is_one_of(tp):
            return True
        origin = get_origin(tp)
        if origin in (list, List):
            tp = get_args(tp)[0] if get_args(tp) else Any
            if isinstance(part, int):
                continue
        elif origin in (dict, Dict):
            tp = get_args(tp)[1] if len(get_args(tp)) == 2 else Any
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
            field = next(
                (f for n, f in tp.model_fields.items() if part in (n, f.alias)),
                None,
            )
            if field is None:
                return False
            tp = field.annotation
            continue
        return False
    return _is_one_of(_unwrap(tp))


def strict_model(model: type, data: Any, what: str = "") -> Any:
    """Validate `data` (parsed JSON) as `model`, strictly; see the module doc.

    Returns the `from_dict` instance. Outside setup_calls() a mismatch
    raises StrictModelError; inside, it is recorded and the client's own
    lenient result is returned.
    """
    problems: List[str] = []
    obj = None
    if not isinstance(data, dict):
        problems.append(f"  expected a JSON object, got {type(data).__name__}: {json.dumps(data, default=str)[:200]}")
    else:
        try:
            model.model_validate_json(json.dumps(data), strict=True)
        except ValidationError as e:
            # A oneOf wrapper field is a pydantic model whose JSON is not an
            # object (OutputValue holds a string or an object): pydantic on
            # the JSON cannot read it, only the wrapper's own from_json can,
            # and from_dict below runs it (with strict member types).
            kept = [x for x in e.errors(include_url=False) if not _through_one_of(model, x["loc"])]
            problems.extend(_validation_lines(kept))
        if not problems:
            try:
                obj = model.from_dict(data)
            except Exception as e:  # the client's own path must not fail either
                problems.append(f"  from_dict: {type(e).__name__}: {e}")
    if problems:
        head = f"{model.__name__}{' (' + what + ')' if what else ''} rejects the answer of {_request_line()}:"
        message = "\n".join([head] + problems)
        if _DEFER["depth"] > 0 or _DEFER["all"]:
            _DEFERRED.append(message)
            return _ORIGINAL_DESERIALIZE(data, model)
        raise StrictModelError(message)
    _warn_undeclared(obj)
    return obj


def strict_list(model: type, data: Any, what: str = "") -> List[Any]:
    if not isinstance(data, list):
        message = (
            f"expected a JSON array of {model.__name__}{' (' + what + ')' if what else ''} from "
            f"{_request_line()}, got {type(data).__name__}: {json.dumps(data, default=str)[:200]}"
        )
        if _DEFER["depth"] > 0 or _DEFER["all"]:
            _DEFERRED.append(message)
            return [_ORIGINAL_DESERIALIZE(data, model)]
        raise StrictModelError(message)
    if model in (str, int, float, bool):
        wrong = [item for item in data if type(item) is not model]
        if wrong:
            raise StrictModelError(
                f"expected a JSON array of {model.__name__} from {_request_line()}, "
                f"got {json.dumps(wrong, default=str)[:200]}"
            )
        return data
    return [strict_model(model, item, f"{what}[{i}]".lstrip()) for i, item in enumerate(data)]


def _strict_deserialize(data: Any, return_type: Any) -> Any:
    """Stands in for BaseApi._deserialize: the same dispatch, no fallback."""
    if return_type is None:
        return data
    if return_type in (str, int, float, bool):
        if type(data) is not return_type:
            raise StrictModelError(
                f"expected a JSON {return_type.__name__} from {_request_line()}, got {json.dumps(data)[:200]}"
            )
        return data
    if return_type is dict or return_type is Any:
        return data
    if isinstance(return_type, type) and issubclass(return_type, BaseModel):
        return strict_model(return_type, data)
    origin = get_origin(return_type)
    if origin is list:
        return strict_list(get_args(return_type)[0], data)
    return _ORIGINAL_DESERIALIZE(data, return_type)


def _strict_json_list_request(self, method, path, item_type, *, params=None, body=None, content_type=None):
    """Stands in for BaseApi._json_list_request: a JSON array, or a failure."""
    resp = self._request(method, path, params=params, body=body, content_type=content_type)
    return strict_list(item_type, resp.json())


def _strict_sse_stream(self, path, event_type, *, params=None):
    """Stands in for BaseApi._sse_stream: every event's data must be JSON.

    Kestra's follow opens with an event of id `start` whose data is a
    placeholder execution holding only its id (ExecutionController.follow:
    `Event.of(Execution.builder().id(executionId).build()).id("start")`).
    That one is not a full answer: it must be a JSON object, and nothing
    more. Every other event is validated as `event_type`.
    """
    _SSE_SEEN.clear()
    url = self._base_url + path
    resp = self._session.get(
        url, params=params, stream=True, headers={"Accept": "text/event-stream"}, timeout=self._timeout
    )
    if resp.status_code >= 400:
        self._raise_for_status(resp)
    ctype = resp.headers.get("Content-Type", "")
    if not ctype.startswith("text/event-stream"):
        resp.close()
        raise StrictModelError(f"{_request_line()} answered Content-Type {ctype!r}, not text/event-stream")
    try:
        for event in sseclient.SSEClient(resp).events():
            _SSE_SEEN.append((event.id, event.event))
            try:
                data = json.loads(event.data)
            except json.JSONDecodeError:
                raise StrictModelError(
                    f"SSE event {event.id!r} from {url} does not hold JSON: {event.data[:200]!r}"
                ) from None
            if event.id == "start":
                if not isinstance(data, dict):
                    raise StrictModelError(f"SSE start event from {url} is not a JSON object: {event.data[:200]!r}")
                yield _ORIGINAL_DESERIALIZE(data, event_type)
            else:
                yield strict_model(event_type, data, f"SSE event {event.id!r}")
    finally:
        resp.close()


@contextlib.contextmanager
def setup_calls():
    """Calls that prepare a test: validation failures are reported at its end."""
    _DEFER["depth"] += 1
    try:
        yield
    finally:
        _DEFER["depth"] -= 1


def _distinct(messages: List[str]) -> List[str]:
    """The same rejection of the same route once, with a count."""
    counts: Dict[str, int] = {}
    for m in messages:
        # Fold the ids in the URL (execution ids, run-unique names).
        key = re.sub(r"/executions/[A-Za-z0-9]{16,}", "/executions/{id}", m)
        counts[key] = counts.get(key, 0) + 1
    return [m + (f"\n  (seen {n} times)" if n > 1 else "") for m, n in counts.items()]


def kestra_test(fn):
    """Fails the test, at its end, for setup answers that did not validate."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _DEFERRED.clear()
        try:
            fn(*args, **kwargs)
        except BaseException as e:
            for message in _distinct(_DEFERRED):
                e.add_note("answer rejected too: " + message)
            raise
        if _DEFERRED:
            raise StrictModelError(
                "the test's checks passed, but answers did not validate:\n"
                + "\n".join(_distinct(_DEFERRED))
            )

    return wrapper


@pytest.fixture(scope="session", autouse=True)
def strict_client():
    """Swap kestrapy's lenient deserialization for the strict one, for the run.

    With `_deserialize`, `_json_list_request` and `_sse_stream` replaced, the
    unvalidated fallback `_construct_model` is reachable only through the
    original `_deserialize`, which this suite calls for setup answers that
    already failed validation (see setup_calls). The originals are put back
    after the run.
    """
    mp = pytest.MonkeyPatch()
    mp.setattr(BaseApi, "_deserialize", staticmethod(_strict_deserialize))
    mp.setattr(BaseApi, "_json_list_request", _strict_json_list_request)
    mp.setattr(BaseApi, "_sse_stream", _strict_sse_stream)
    yield
    mp.undo()


# ---------------------------------------------------------------------------
# Client, names, flows
# ---------------------------------------------------------------------------


def _record(response, *args, **kwargs):
    _LAST["response"] = response


def make_client(username: Optional[str] = USER, password: Optional[str] = PASSWORD) -> KestraClient:
    client = KestraClient(host=URL, username=username, password=password, timeout=TIMEOUT)
    client._session.hooks["response"].append(_record)
    return client


@pytest.fixture(scope="session")
def client():
    with make_client() as c:
        yield c


@pytest.fixture
def ns(request) -> str:
    """A namespace no other test and no other run uses."""
    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower().removeprefix("test_"))
    return f"kestrapy.r{RUN}.{name}"


def last_status() -> int:
    assert _LAST["response"] is not None, "no request recorded"
    return _LAST["response"].status_code


def state_of(obj) -> str:
    """`state.current` as a string, whether validated (enum) or lenient."""
    current = obj.state.current
    return getattr(current, "value", current)


def return_flow(ns: str, fid: str, fmt: str = "hello {{ execution.id }}", outputs: bool = False) -> str:
    source = (
        f"id: {fid}\n"
        f"namespace: {ns}\n"
        "tasks:\n"
        "  - id: log\n"
        f"    type: {LOG}\n"
        '    message: "running {{ flow.id }}"\n'
        "  - id: ret\n"
        f"    type: {RETURN}\n"
        f'    format: "{fmt}"\n'
    )
    if outputs:
        source += (
            "outputs:\n"
            "  - id: result\n"
            "    type: STRING\n"
            '    value: "{{ outputs.ret.value }}"\n'
        )
    return source


def sleep_flow(ns: str, fid: str, duration: str = "PT5S") -> str:
    return (
        f"id: {fid}\n"
        f"namespace: {ns}\n"
        "tasks:\n"
        "  - id: nap\n"
        f"    type: {SLEEP}\n"
        f"    duration: {duration}\n"
    )


def webhook_flow(ns: str, fid: str, key: str) -> str:
    return (
        f"id: {fid}\n"
        f"namespace: {ns}\n"
        "tasks:\n"
        "  - id: ret\n"
        f"    type: {RETURN}\n"
        '    format: "got {{ trigger.body.name ?? \'nothing\' }}"\n'
        "triggers:\n"
        "  - id: hook\n"
        f"    type: {WEBHOOK}\n"
        f"    key: {key}\n"
    )


def create(client, source: str):
    with setup_calls():
        return client.flows.create_flow(TENANT, source)


def run(client, ns: str, fid: str, wait: bool = True):
    with setup_calls():
        return client.executions.create_execution(TENANT, ns, fid, wait=wait)


def get_execution(client, execution_id: str):
    with setup_calls():
        return client.executions.execution(execution_id, TENANT)


def wait_for(client, execution_id: str, states=TERMINAL, deadline: float = DEADLINE):
    """Polls the execution until its state is one of `states`."""
    end = time.monotonic() + deadline
    while True:
        execution = get_execution(client, execution_id)
        if state_of(execution) in states:
            return execution
        if time.monotonic() > end:
            raise AssertionError(
                f"execution {execution_id} still {state_of(execution)} after {deadline}s, waiting for {sorted(states)}"
            )
        time.sleep(0.1)


def task_runs(execution) -> Dict[str, Any]:
    return {tr.task_id: tr for tr in (execution.task_run_list or [])}


def labels_of(obj) -> Dict[str, str]:
    return {lb.key: lb.value for lb in (obj.labels or [])}


def search_executions(client, *, filters, page=None, size=None, sort=None, what="") -> PagedResultsApiLightExecution:
    """The client returns raw JSON here; Kestra's OpenAPI names the model.

    GET /api/v1/{tenant}/executions/search answers
    `PagedResults_ApiLightExecution_` (operation searchExecutions), which
    kestrapy ships as PagedResultsApiLightExecution but does not apply.
    """
    raw = client.executions.search_executions(TENANT, page=page, size=size, sort=sort, filters=filters)
    return strict_model(PagedResultsApiLightExecution, raw, what)


# ---------------------------------------------------------------------------
# Flows
# ---------------------------------------------------------------------------


@kestra_test
def test_create_flow(client, ns):
    source = return_flow(ns, "hello")
    flow = client.flows.create_flow(TENANT, source)
    assert isinstance(flow, FlowWithSource)
    assert last_status() == 200
    assert (flow.id, flow.namespace, flow.revision) == ("hello", ns, 1)
    assert flow.disabled is False
    assert flow.draft is False
    assert flow.deleted is False
    assert [(t.id, t.type) for t in flow.tasks] == [("log", LOG), ("ret", RETURN)]
    assert flow.tasks[1].additional_properties.get("format") == "hello {{ execution.id }}"
    assert flow.source == source


@kestra_test
def test_loosely_typed_flow_fields_come_back_typed(client, ns):
    """The engine reads scalars as Kestra does (`disabled: "false"` is false,
    `defaults: 2` is the text "2"); the answers carry Kestra's types, which
    the strict models require."""
    source = (
        "id: loose\n"
        f"namespace: {ns}\n"
        "description: 42\n"
        "inputs:\n"
        "  - id: times\n"
        "    type: INT\n"
        "    defaults: 2\n"
        "    required: 'false'\n"
        "  - id: names\n"
        "    type: ARRAY\n"
        "    itemType: STRING\n"
        "    defaults: [a, b]\n"
        "tasks:\n"
        "  - id: ret\n"
        f"    type: {RETURN}\n"
        "    format: '{{ inputs.times }}'\n"
        "    disabled: 'false'\n"
        "    allowFailure: 'true'\n"
        "    description: 7\n"
    )
    flow = client.flows.create_flow(TENANT, source)
    assert last_status() == 200
    assert flow.description == "42"
    times, names = flow.inputs
    assert times.required is False
    assert times.defaults.actual_instance == "2"
    assert json.loads(names.defaults.actual_instance) == ["a", "b"]
    task = flow.tasks[0]
    assert (task.disabled, task.allow_failure, task.description) == (False, True, "7")
    assert flow.source == source
    again = client.flows.flow(ns, "loose", TENANT)
    assert again.tasks[0].allow_failure is True
    done = run(client, ns, "loose")
    assert state_of(done) == "SUCCESS"
    assert task_runs(done)["ret"].additional_properties["outputs"]["value"] == "2"


@kestra_test
def test_get_flow(client, ns):
    create(client, return_flow(ns, "hello"))
    flow = client.flows.flow(ns, "hello", TENANT)
    assert isinstance(flow, FlowWithSource)
    assert (flow.id, flow.namespace, flow.revision) == ("hello", ns, 1)
    assert (flow.disabled, flow.draft, flow.deleted) == (False, False, False)
    assert [t.id for t in flow.tasks] == ["log", "ret"]


@kestra_test
def test_flow_source(client, ns):
    source = return_flow(ns, "hello", fmt="the source")
    create(client, source)
    flow = client.flows.flow(ns, "hello", TENANT, source=True)
    assert isinstance(flow, FlowWithSource)
    # The source comes back as sent, comments and layout included.
    assert flow.source == source
    assert (flow.id, flow.namespace, flow.revision) == ("hello", ns, 1)


@kestra_test
def test_update_flow(client, ns):
    create(client, return_flow(ns, "hello", fmt="first"))
    source = return_flow(ns, "hello", fmt="second")
    flow = client.flows.update_flow(ns, "hello", TENANT, source)
    assert isinstance(flow, FlowWithSource)
    assert last_status() == 200
    assert (flow.id, flow.namespace, flow.revision) == ("hello", ns, 2)
    assert flow.tasks[1].additional_properties.get("format") == "second"
    assert flow.source == source
    again = client.flows.flow(ns, "hello", TENANT)
    assert again.revision == 2
    assert again.tasks[1].additional_properties.get("format") == "second"


@kestra_test
def test_delete_flow(client, ns):
    create(client, return_flow(ns, "doomed"))
    create(client, return_flow(ns, "kept"))
    assert client.flows.delete_flow(ns, "doomed", TENANT) is None
    assert last_status() in (200, 204)
    with setup_calls():
        remaining = client.flows.list_flows_by_namespace(ns, TENANT)
    assert [f.id for f in remaining] == ["kept"]


@kestra_test
def test_list_flows_by_namespace(client, ns):
    create(client, return_flow(ns, "alpha"))
    create(client, return_flow(ns, "beta"))
    create(client, return_flow(ns + ".child", "gamma"))
    flows = client.flows.list_flows_by_namespace(ns, TENANT)
    assert all(isinstance(f, Flow) for f in flows)
    assert sorted(f.id for f in flows) == ["alpha", "beta"]
    assert {f.namespace for f in flows} == {ns}
    assert all(f.revision == 1 for f in flows)


@kestra_test
def test_search_flows(client, ns):
    for fid in ("alpha", "beta", "gamma"):
        create(client, return_flow(ns, fid))
    create(client, return_flow(ns + ".other", "alpha"))
    page = client.flows.search_flows(TENANT, page=1, size=10, filters=[eq(F.NAMESPACE, ns)])
    assert isinstance(page, PagedResultsFlow)
    assert page.total == 3
    assert sorted(f.id for f in page.results) == ["alpha", "beta", "gamma"]
    assert {f.namespace for f in page.results} == {ns}
    # Pagination: page 2 of size 2 holds the one left, total unchanged.
    first = client.flows.search_flows(TENANT, page=1, size=2, sort=["id:asc"], filters=[eq(F.NAMESPACE, ns)])
    second = client.flows.search_flows(TENANT, page=2, size=2, sort=["id:asc"], filters=[eq(F.NAMESPACE, ns)])
    assert (first.total, second.total) == (3, 3)
    assert [f.id for f in first.results] == ["alpha", "beta"]
    assert [f.id for f in second.results] == ["gamma"]


@kestra_test
def test_validate_flow(client, ns):
    valid = return_flow(ns, "fine")
    result = client.flows.validate_flows(TENANT, valid)
    assert all(isinstance(v, ValidateConstraintViolation) for v in result)
    assert len(result) == 1
    assert result[0].index == 0
    assert not result[0].constraints, result[0].constraints
    assert (result[0].flow, result[0].namespace) == ("fine", ns)

    # Several documents: one result each, in order; a flow without tasks
    # breaks Kestra's `tasks` constraint.
    invalid = f"id: broken\nnamespace: {ns}\ntasks: []\n"
    both = client.flows.validate_flows(TENANT, valid + "---\n" + invalid)
    assert [v.index for v in both] == [0, 1]
    assert not both[0].constraints
    assert both[1].constraints, "a flow without tasks must not validate"
    # Validation stores nothing.
    with setup_calls():
        assert client.flows.list_flows_by_namespace(ns, TENANT) == []


@kestra_test
def test_flow_revisions(client, ns):
    sources = [return_flow(ns, "hello", fmt=f"revision {n}") for n in (1, 2, 3)]
    create(client, sources[0])
    with setup_calls():
        client.flows.update_flow(ns, "hello", TENANT, sources[1])
        client.flows.update_flow(ns, "hello", TENANT, sources[2])
    revisions = client.flows.list_flow_revisions(ns, "hello", TENANT)
    assert all(isinstance(r, FlowWithSource) for r in revisions)
    assert [r.revision for r in revisions] == [1, 2, 3]
    for r in revisions:
        assert (r.id, r.namespace) == ("hello", ns)
        assert r.tasks[1].additional_properties.get("format") == f"revision {r.revision}"
        assert r.source == sources[r.revision - 1]
    # An older revision can be read on its own.
    old = client.flows.flow(ns, "hello", TENANT, revision=1)
    assert old.revision == 1
    assert old.tasks[1].additional_properties.get("format") == "revision 1"


@kestra_test
def test_not_found_after_delete(client, ns):
    create(client, return_flow(ns, "ghost"))
    with setup_calls():
        client.flows.delete_flow(ns, "ghost", TENANT)
    with pytest.raises(NotFoundException) as caught:
        client.flows.flow(ns, "ghost", TENANT)
    assert caught.value.status == 404
    with pytest.raises(NotFoundException):
        client.executions.create_execution(TENANT, ns, "ghost", wait=True)
    with pytest.raises(NotFoundException):
        client.executions.execution("no" + RUN + "such", TENANT)


# ---------------------------------------------------------------------------
# Executions
# ---------------------------------------------------------------------------


def _check_successful_run(execution, ns: str, fid: str):
    assert (execution.namespace, execution.flow_id, execution.flow_revision) == (ns, fid, 1)
    assert state_of(execution) == "SUCCESS"
    assert execution.original_id == execution.id
    assert execution.deleted is False
    assert execution.metadata.original_created_date is not None
    runs = task_runs(execution)
    assert sorted(runs) == ["log", "ret"]
    for tr in runs.values():
        assert tr.execution_id == execution.id
        assert (tr.namespace, tr.flow_id) == (ns, fid)
        assert state_of(tr) == "SUCCESS"
    histories = [getattr(h.state, "value", h.state) for h in execution.state.histories]
    assert histories[0] == "CREATED" and histories[-1] == "SUCCESS", histories


@kestra_test
def test_create_execution_wait(client, ns):
    create(client, return_flow(ns, "hello"))
    execution = client.executions.create_execution(TENANT, ns, "hello", wait=True)
    assert isinstance(execution, ExecutionControllerExecutionResponse)
    assert last_status() == 200
    _check_successful_run(execution, ns, "hello")


@kestra_test
def test_create_execution_no_wait(client, ns):
    create(client, return_flow(ns, "hello"))
    execution = client.executions.create_execution(TENANT, ns, "hello")
    assert isinstance(execution, ExecutionControllerExecutionResponse)
    assert last_status() == 200
    assert (execution.namespace, execution.flow_id, execution.flow_revision) == (ns, "hello", 1)
    assert state_of(execution) not in {"FAILED", "KILLED", "CANCELLED"}
    done = wait_for(client, execution.id)
    assert state_of(done) == "SUCCESS"


@kestra_test
def test_get_execution(client, ns):
    create(client, return_flow(ns, "hello"))
    started = run(client, ns, "hello")
    execution = client.executions.execution(started.id, TENANT)
    assert isinstance(execution, Execution)
    assert execution.id == started.id
    _check_successful_run(execution, ns, "hello")
    assert sorted(task_runs(execution)) == sorted(task_runs(started))


@kestra_test
def test_search_executions_by_namespace_and_flow(client, ns):
    a, b = f"a{RUN}", f"b{RUN}"
    for fid in (a, b):
        create(client, return_flow(ns, fid))
    create(client, return_flow(ns + ".other", a))
    ran_a = [run(client, ns, a).id for _ in range(2)]
    ran_b = run(client, ns, b).id
    ran_other = run(client, ns + ".other", a).id

    page = search_executions(client, filters=[eq(F.NAMESPACE, ns)], size=50, what="namespace")
    assert page.total == 3
    assert sorted(e.id for e in page.results) == sorted(ran_a + [ran_b])
    assert {e.namespace for e in page.results} == {ns}
    assert {e.tenant_id for e in page.results} == {TENANT}

    page = search_executions(client, filters=[eq(F.NAMESPACE, ns), eq(F.FLOW_ID, a)], size=50, what="flowId")
    assert page.total == 2
    assert sorted(e.id for e in page.results) == sorted(ran_a)
    assert {(e.namespace, e.flow_id) for e in page.results} == {(ns, a)}

    # flowId alone matches the flow of that id in every namespace.
    page = search_executions(client, filters=[eq(F.FLOW_ID, a)], size=50, what="flowId only")
    assert sorted(e.id for e in page.results) == sorted(ran_a + [ran_other])

    page = search_executions(client, filters=[eq(F.NAMESPACE, ns + ".nothing")], what="empty")
    assert (page.total, page.results) == (0, [])


@kestra_test
def test_search_executions_by_state(client, ns):
    create(client, return_flow(ns, "quick"))
    create(client, sleep_flow(ns, "slow", "PT10S"))
    succeeded = run(client, ns, "quick").id
    slow = run(client, ns, "slow", wait=False).id
    with setup_calls():
        client.executions.kill_execution(slow, TENANT)
    wait_for(client, slow, {"KILLED"}, deadline=15)

    killed = search_executions(client, filters=[eq(F.NAMESPACE, ns), eq(F.STATE, "KILLED")], what="KILLED")
    assert [e.id for e in killed.results] == [slow]
    assert killed.total == 1
    assert state_of(killed.results[0]) == "KILLED"

    ok = search_executions(client, filters=[eq(F.NAMESPACE, ns), eq(F.STATE, "SUCCESS")], what="SUCCESS")
    assert [e.id for e in ok.results] == [succeeded]
    assert ok.total == 1
    assert state_of(ok.results[0]) == "SUCCESS"


@kestra_test
def test_search_executions_sort_and_pagination(client, ns):
    create(client, return_flow(ns, "hello"))
    ids = []
    for _ in range(3):
        ids.append(run(client, ns, "hello").id)
        time.sleep(0.02)  # distinct start dates at millisecond precision
    filters = [eq(F.NAMESPACE, ns)]

    asc1 = search_executions(client, filters=filters, page=1, size=2, sort=["state.startDate:asc"], what="asc p1")
    asc2 = search_executions(client, filters=filters, page=2, size=2, sort=["state.startDate:asc"], what="asc p2")
    assert (asc1.total, asc2.total) == (3, 3)
    assert [e.id for e in asc1.results] == ids[:2]
    assert [e.id for e in asc2.results] == ids[2:]

    desc = search_executions(client, filters=filters, page=1, size=10, sort=["state.startDate:desc"], what="desc")
    assert [e.id for e in desc.results] == ids[::-1]

    beyond = search_executions(client, filters=filters, page=3, size=2, sort=["state.startDate:asc"], what="past end")
    assert (beyond.total, beyond.results) == (3, [])


@kestra_test
def test_kill_execution(client, ns):
    create(client, sleep_flow(ns, "slow", "PT8S"))
    started = run(client, ns, "slow", wait=False)
    with contextlib.suppress(AssertionError):
        wait_for(client, started.id, {"RUNNING"}, deadline=5)
    killed = client.executions.kill_execution(started.id, TENANT)
    assert last_status() == 200
    assert isinstance(killed, Execution)
    assert killed.id == started.id
    assert state_of(killed) in {"KILLING", "KILLED"}
    done = wait_for(client, started.id, deadline=15)
    assert state_of(done) == "KILLED"
    assert state_of(task_runs(done)["nap"]) == "KILLED"


@kestra_test
def test_resume_execution(client, ns):
    source = (
        "id: approval\n"
        f"namespace: {ns}\n"
        "tasks:\n"
        "  - id: ask\n"
        "    type: io.kestra.plugin.core.flow.Pause\n"
        "    onResume:\n"
        "      - id: approved\n"
        "        type: BOOLEAN\n"
        "  - id: said\n"
        f"    type: {RETURN}\n"
        '    format: "approved {{ outputs.ask.onResume.approved }}"\n'
    )
    create(client, source)
    started = run(client, ns, "approval", wait=False)
    wait_for(client, started.id, {"PAUSED"})
    resumed = client.executions.resume_execution(started.id, TENANT, {"approved": True})
    assert last_status() == 200
    assert isinstance(resumed, Execution)
    assert resumed.id == started.id
    done = wait_for(client, started.id)
    assert state_of(done) == "SUCCESS"
    assert task_runs(done)["said"].additional_properties["outputs"]["value"] == "approved true"
    # Nothing left to resume.
    with pytest.raises(ApiException) as caught:
        client.executions.resume_execution(started.id, TENANT, {"approved": True})
    assert caught.value.status == 409


@kestra_test
def test_follow_execution(client, ns):
    create(client, sleep_flow(ns, "slow", "PT1S"))
    started = run(client, ns, "slow", wait=False)
    events = []
    for event in client.executions.follow_execution(started.id, TENANT):
        events.append(event)
        if len(events) > 200:
            raise AssertionError("follow did not end after 200 events")
    ids = [event_id for event_id, _ in _SSE_SEEN]
    full = [e for (event_id, _), e in zip(_SSE_SEEN, events) if event_id != "start"]
    assert full, f"no execution event on the stream (events: {ids})"
    assert ids[-1] == "end", f"the stream must close with an `end` event, got {ids}"
    assert all(isinstance(e, Execution) and e.id == started.id for e in full)
    assert state_of(full[-1]) == "SUCCESS"
    assert state_of(task_runs(full[-1])["nap"]) == "SUCCESS"


@kestra_test
def test_follow_finished_execution(client, ns):
    create(client, return_flow(ns, "hello"))
    done = run(client, ns, "hello")
    events = list(client.executions.follow_execution(done.id, TENANT))
    full = [e for (event_id, _), e in zip(_SSE_SEEN, events) if event_id != "start"]
    ids = [event_id for event_id, _ in _SSE_SEEN]
    assert ids[-1:] == ["end"], f"the stream must close with an `end` event, got {ids}"
    assert full and all(e.id == done.id for e in full)
    assert state_of(full[-1]) == "SUCCESS"


@kestra_test
def test_execution_outputs(client, ns):
    create(client, return_flow(ns, "hello", fmt="value of {{ flow.id }}", outputs=True))
    done = run(client, ns, "hello")
    outputs = client.outputs.execution_outputs(done.id, TENANT)
    assert last_status() == 200
    assert isinstance(outputs, dict), f"flow outputs must be a JSON object, got {outputs!r}"
    assert outputs == {"result": "value of hello"}


@kestra_test
def test_task_outputs_information(client, ns):
    create(client, return_flow(ns, "hello", fmt="value of {{ flow.id }}"))
    done = run(client, ns, "hello")
    ret = task_runs(done)["ret"]
    info = client.outputs.task_outputs_information(done.id, TENANT)
    assert all(isinstance(i, OutputControllerTaskOutputInformation) for i in info)
    by_task = {i.task_id: i for i in info}
    # The Return task has outputs; the Log task has none.
    assert "ret" in by_task, [i.task_id for i in info]
    assert "log" not in by_task
    assert by_task["ret"].task_run_id == ret.id


@kestra_test
def test_task_run_outputs(client, ns):
    create(client, return_flow(ns, "hello", fmt="value of {{ flow.id }}"))
    done = run(client, ns, "hello")
    ret = task_runs(done)["ret"]
    outputs = client.outputs.task_run_outputs(done.id, ret.id, TENANT)
    assert last_status() == 200
    assert isinstance(outputs, dict), f"task run outputs must be a JSON object, got {outputs!r}"
    assert outputs == {"value": "value of hello"}


@kestra_test
def test_set_labels(client, ns):
    create(client, return_flow(ns, "hello"))
    done = run(client, ns, "hello")
    before = labels_of(done)
    labelled = client.executions.set_labels_on_terminated_execution(
        done.id, TENANT, [Label(key="team", value="data"), Label(key="env", value="test")]
    )
    assert last_status() == 200
    assert isinstance(labelled, Execution)
    assert labelled.id == done.id
    assert state_of(labelled) == "SUCCESS"
    got = labels_of(labelled)
    assert (got.get("team"), got.get("env")) == ("data", "test"), got
    # System labels (system.correlationId...) stay.
    assert {k: v for k, v in before.items() if k.startswith("system.")}.items() <= got.items()
    # Only the labels changed.
    assert labelled.state.histories == done.state.histories
    assert task_runs(labelled).keys() == task_runs(done).keys()
    again = labels_of(get_execution(client, done.id))
    assert (again.get("team"), again.get("env")) == ("data", "test"), again
    # Merged by key: one changed, the others kept.
    merged = client.executions.set_labels_on_terminated_execution(done.id, TENANT, [Label(key="env", value="prod")])
    assert (labels_of(merged).get("team"), labels_of(merged).get("env")) == ("data", "prod")
    # A system label is the engine's: changing one is refused, and nothing changes.
    with pytest.raises(ApiException) as caught:
        client.executions.set_labels_on_terminated_execution(
            done.id, TENANT, [Label(key="team", value="x"), Label(key="system.correlationId", value="forged")]
        )
    assert caught.value.status == 422
    assert labels_of(get_execution(client, done.id)).get("team") == "data"
    with pytest.raises(NotFoundException):
        client.executions.set_labels_on_terminated_execution("no" + RUN + "such", TENANT, [Label(key="a", value="b")])


@kestra_test
def test_set_labels_on_a_running_execution_is_refused(client, ns):
    create(client, sleep_flow(ns, "slow", "PT3S"))
    started = run(client, ns, "slow", wait=False)
    with pytest.raises(ApiException) as caught:
        client.executions.set_labels_on_terminated_execution(started.id, TENANT, [Label(key="a", value="b")])
    assert caught.value.status == 400
    done = wait_for(client, started.id)
    assert "a" not in labels_of(done)


@kestra_test
def test_set_labels_by_ids(client, ns):
    from kestrapy.models.bulk_response import BulkResponse
    from kestrapy.models.execution_controller_set_labels_by_ids_request import (
        ExecutionControllerSetLabelsByIdsRequest as ByIds,
    )

    create(client, return_flow(ns, "hello"))
    create(client, sleep_flow(ns, "slow", "PT3S"))
    first, second = run(client, ns, "hello"), run(client, ns, "hello")
    running = run(client, ns, "slow", wait=False)

    def request(ids):
        return ByIds(executions_id=ids, execution_labels=[Label(key="batch", value="b1")]).model_dump(by_alias=True)

    # One cannot take labels: none does.
    with pytest.raises(ApiException) as caught:
        client.executions.set_labels_on_terminated_executions_by_ids(TENANT, request([first.id, running.id]))
    assert caught.value.status == 400
    assert "batch" not in labels_of(get_execution(client, first.id))
    raw = client.executions.set_labels_on_terminated_executions_by_ids(TENANT, request([first.id, second.id]))
    assert last_status() == 200
    assert strict_model(BulkResponse, raw, "by-ids").count == 2
    for done in (first, second):
        assert labels_of(get_execution(client, done.id)).get("batch") == "b1"
    wait_for(client, running.id)


@kestra_test
def test_set_labels_by_query(client, ns):
    from kestrapy.models.bulk_response import BulkResponse

    create(client, return_flow(ns, "hello"))
    create(client, return_flow(ns, "other"))
    ids = [run(client, ns, "hello").id for _ in range(3)]
    untouched = run(client, ns, "other").id
    raw = client.executions.set_labels_on_terminated_executions_by_query(
        TENANT, [Label(key="wave", value="w2")], filters=[eq(F.NAMESPACE, ns), eq(F.FLOW_ID, "hello")]
    )
    assert last_status() == 200
    assert strict_model(BulkResponse, raw, "by-query").count == 3
    for execution_id in ids:
        assert labels_of(get_execution(client, execution_id)).get("wave") == "w2"
    assert "wave" not in labels_of(get_execution(client, untouched))


# ---------------------------------------------------------------------------
# KV store, logs, deletion
# ---------------------------------------------------------------------------


@kestra_test
def test_kv_set_get_list_and_delete(client, ns):
    client.kv.set_key_value(ns, "greeting", TENANT, '"hello"')
    assert last_status() == 200
    detail = client.kv.key_value(ns, "greeting", TENANT)
    assert isinstance(detail, KVControllerKvDetail)
    assert (getattr(detail.type, "value", detail.type), detail.value, detail.revision) == ("STRING", "hello", 1)
    child = ns + ".child"
    client.kv.set_key_value(child, "n", TENANT, "42")
    inherited = client.kv.list_keys_with_inheritance(child, TENANT)
    assert all(isinstance(e, KVEntry) for e in inherited)
    assert [(e.namespace, e.key) for e in inherited] == [(child, "n"), (ns, "greeting")]
    page = client.kv.list_all_keys(TENANT, filters=[eq(F.NAMESPACE, ns)])
    assert isinstance(page, PagedResultsKVEntry)
    assert (page.total, [e.key for e in page.results]) == (1, ["greeting"])
    assert client.kv.delete_key_value(ns, "greeting", TENANT) is True
    bulk = client.kv.delete_key_values(child, TENANT, KVControllerApiDeleteBulkRequest(keys=["n", "none"]))
    assert isinstance(bulk, KVControllerApiDeleteBulkResponse)
    assert bulk.keys == ["n"]
    with pytest.raises(NotFoundException):
        client.kv.key_value(ns, "greeting", TENANT)


@kestra_test
def test_logs_of_an_execution(client, ns):
    create(client, return_flow(ns, "hello"))
    started = run(client, ns, "hello")
    logs = client.logs.list_logs_from_execution(started.id, TENANT)
    assert all(isinstance(line, LogEntry) for line in logs)
    assert [line.message for line in logs] == ["running hello"]
    line = logs[0]
    assert (line.namespace, line.flow_id, line.task_id, line.execution_id) == (ns, "hello", "log", started.id)
    assert line.attempt_number == 0
    assert line.task_run_id == task_runs(started)["log"].id
    assert client.logs.list_logs_from_execution(started.id, TENANT, min_level="ERROR") == []
    found = client.logs.search_logs(TENANT, filters=[eq(F.NAMESPACE, ns)])
    assert isinstance(found, CursorOrOffsetPagedResultsLogEntry)
    assert (found.total, [x.message for x in found.results]) == (1, ["running hello"])
    text = client.logs.download_logs_from_execution(started.id, TENANT)
    assert text.strip().endswith("INFO running hello"), text
    client.logs.delete_logs_from_execution(started.id, TENANT)
    assert last_status() == 204
    assert client.logs.list_logs_from_execution(started.id, TENANT) == []


def measured_flow(ns: str, fid: str) -> str:
    return f"""
id: {fid}
namespace: {ns}
tasks:
  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo '::{{"metrics":[{{"name":"rows","type":"counter","value":3,"tags":{{"table":"t1"}}}},{{"name":"took","type":"timer","value":0.5}}]}}::'
"""


@kestra_test
def test_metrics_of_an_execution_and_its_flow(client, ns):
    create(client, measured_flow(ns, "measured"))
    started = run(client, ns, "measured")
    page = strict_model(
        PagedResultsMetricEntry, client.metrics.execution_metrics(started.id, TENANT), "metrics"
    )
    assert page.total == 2
    rows, took = page.results
    assert (rows.name, rows.type, rows.value, rows.tags) == ("rows", "counter", 3.0, {"table": "t1"})
    assert (rows.namespace, rows.flow_id, rows.task_id, rows.execution_id) == (ns, "measured", "sh", started.id)
    assert rows.task_run_id == task_runs(started)["sh"].id
    assert (took.type, took.value) == ("timer", 500.0)
    one = strict_model(
        PagedResultsMetricEntry,
        client.metrics.execution_metrics(started.id, TENANT, size=1, sort=["name:desc"]),
    )
    assert (one.total, [m.name for m in one.results]) == (2, ["took"])
    assert client.metrics.flow_metric_names(ns, "measured", TENANT) == ["rows", "took"]
    assert client.metrics.task_metric_names(ns, "measured", "sh", TENANT) == ["rows", "took"]
    assert client.metrics.tasks_with_metrics(ns, "measured", TENANT) == ["sh"]
    summed = strict_model(
        MetricAggregations, client.metrics.aggregate_flow_metric(ns, "measured", "rows", TENANT)
    )
    assert summed.group_by == "day"
    assert sum(a.value for a in summed.aggregations) == 3.0
    assert all(a.name == "rows" for a in summed.aggregations)
    biggest = strict_model(
        MetricAggregations,
        client.metrics.aggregate_task_metric(ns, "measured", "sh", "took", TENANT, aggregation="max"),
    )
    assert max(a.value for a in biggest.aggregations) == 500.0


@kestra_test
def test_delete_executions(client, ns):
    create(client, return_flow(ns, "hello"))
    one, two = run(client, ns, "hello"), run(client, ns, "hello")
    client.executions.delete_execution(one.id, TENANT)
    assert last_status() == 204
    with pytest.raises(NotFoundException):
        client.executions.execution(one.id, TENANT)
    bulk = client.executions.delete_executions_by_ids(TENANT, [two.id])
    assert bulk.count == 1
    with pytest.raises(NotFoundException):
        client.executions.execution(two.id, TENANT)


@kestra_test
def test_webhook_get(client, ns):
    key = f"k{RUN}"
    create(client, webhook_flow(ns, "hooked", key))
    answer = client.executions.trigger_execution_by_get_webhook(TENANT, ns, "hooked", key)
    assert isinstance(answer, WebhookResponse)
    assert last_status() == 200
    assert answer.id
    assert (answer.namespace, answer.flow_id, answer.flow_revision) == (ns, "hooked", 1)
    execution = wait_for(client, answer.id)
    assert state_of(execution) == "SUCCESS"
    assert (execution.trigger.id, execution.trigger.type) == ("hook", WEBHOOK)
    with pytest.raises(NotFoundException):
        client.executions.trigger_execution_by_get_webhook(TENANT, ns, "hooked", key + "-wrong")


@kestra_test
def test_webhook_post(client, ns):
    key = f"k{RUN}"
    create(client, webhook_flow(ns, "hooked", key))
    # kestrapy 2.0.3 has POST only for the `{key}/{path}` form; the plain
    # POST /executions/webhook/{namespace}/{flowId}/{key} of Kestra's OpenAPI
    # (triggerExecutionByPostWebhook) goes through the client's own request
    # and deserialization machinery, as its generated method would.
    api = client.executions
    path = api._tenant_path(TENANT, "executions", "webhook", ns, "hooked", key)
    answer = api._json_request("POST", path, WebhookResponse, body={"name": "kestrapy"})
    assert isinstance(answer, WebhookResponse)
    assert last_status() == 200
    assert (answer.namespace, answer.flow_id, answer.flow_revision) == (ns, "hooked", 1)
    execution = wait_for(client, answer.id)
    assert state_of(execution) == "SUCCESS"
    assert (execution.trigger.id, execution.trigger.type) == ("hook", WEBHOOK)
    assert execution.trigger.variables["body"] == {"name": "kestrapy"}


@pytest.mark.skipif(USER is None, reason="PEREGRINE_USER is not set: the server runs without basic auth")
@kestra_test
def test_auth_wrong_password(client, ns):
    create(client, return_flow(ns, "guarded"))
    with make_client(USER, (PASSWORD or "") + "-wrong") as intruder:
        with pytest.raises(UnauthorizedException) as caught:
            intruder.flows.list_flows_by_namespace(ns, TENANT)
        assert caught.value.status == 401
        with pytest.raises(UnauthorizedException):
            intruder.executions.create_execution(TENANT, ns, "guarded", wait=True)
    with make_client(None, None) as anonymous:
        with pytest.raises(UnauthorizedException):
            anonymous.flows.flow(ns, "guarded", TENANT)
    # The right password still gets in.
    with setup_calls():
        assert [f.id for f in client.flows.list_flows_by_namespace(ns, TENANT)] == ["guarded"]


def test_strictness_self_check(monkeypatch):
    """The suite's own guard: the lenient client paths must be closed.

    Not a server test: it feeds the patched client answers it must refuse,
    so that a kestrapy upgrade that moves its fallbacks is noticed.
    """
    monkeypatch.setitem(_DEFER, "all", False)
    ok_state = {
        "current": "SUCCESS",
        "histories": [{"state": "SUCCESS", "date": "2026-01-01T00:00:00Z"}],
        "getDuration": "PT0S",
        "getStartDate": "2026-01-01T00:00:00Z",
        "getEndDate": "2026-01-01T00:00:00Z",
    }
    from kestrapy.models.state import State

    assert isinstance(BaseApi._deserialize(ok_state, State), State)
    for bad in (
        {**ok_state, "current": "success"},
        {**ok_state, "getStartDate": 1767225600},
        {k: v for k, v in ok_state.items() if k != "histories"},
    ):
        with pytest.raises(StrictModelError):
            BaseApi._deserialize(bad, State)
    with pytest.raises(StrictModelError):
        BaseApi._deserialize(["not", "an", "object"], State)
    with pytest.raises(StrictModelError):
        BaseApi._deserialize(None, State)
    # The client's own path would have taken all of these.
    assert _ORIGINAL_DESERIALIZE({**ok_state, "current": "success"}, State) is not None
