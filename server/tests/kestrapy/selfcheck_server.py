"""A stand-in server that answers the suite's calls the way the suite expects.

NOT Kestra and NOT Peregrine: a checking aid for the suite itself. Running
test_kestrapy.py against it shows that every test can pass, i.e. that a
failure against Peregrine is about Peregrine's answers, not a suite bug. Its
JSON is also a worked example of answers kestrapy 2.0.3's models accept.

    python selfcheck_server.py 127.0.0.1:18999 admin@kestra.io Secret123
    PEREGRINE_URL=http://127.0.0.1:18999 PEREGRINE_USER=admin@kestra.io \\
        PEREGRINE_PASSWORD=Secret123 pytest test_kestrapy.py

Only what the suite uses: Log, Return (a few fixed expressions) and Sleep
tasks, a Webhook trigger, flow outputs; everything in memory.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml

TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED", "SKIPPED", "RETRIED"}
LOCK = threading.Condition()
FLOWS: dict = {}  # (ns, id) -> list of revisions: {"body": dict, "source": str, "deleted": bool, "updated": str}
EXECUTIONS: dict = {}  # id -> execution dict (internal shape, rendered on the way out)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    return secrets.token_urlsafe(16).replace("-", "a").replace("_", "b")[:22]


def state(current: str, histories: list) -> dict:
    """Kestra's State plus the getX accessors kestrapy 2.0.3's model requires."""
    start = histories[0]["date"]
    last = histories[-1]["date"]
    t0 = datetime.fromisoformat(start.replace("Z", "+00:00"))
    t1 = datetime.fromisoformat(last.replace("Z", "+00:00")) if len(histories) > 1 else datetime.now(timezone.utc)
    duration = f"PT{(t1 - t0).total_seconds():.3f}S"
    out = {"current": current, "histories": histories, "startDate": start, "duration": duration}
    if current in TERMINAL or current == "PAUSED":
        out["endDate"] = last
    out["getDuration"] = duration
    out["getStartDate"] = start
    out["getEndDate"] = out.get("endDate", last)
    return out


def change(obj: dict, current: str) -> None:
    obj["current"] = current
    obj["histories"].append({"state": current, "date": now()})


def flow_json(ns: str, fid: str, rev: dict, number: int, source: bool) -> dict:
    body = rev["body"]
    out = {
        "id": fid,
        "namespace": ns,
        "revision": number,
        "updated": rev["updated"],
        "disabled": bool(body.get("disabled", False)),
        "draft": False,
        "deleted": rev["deleted"],
        "tasks": body["tasks"],
    }
    for key in ("description", "labels", "inputs", "outputs", "triggers", "variables", "errors", "finally"):
        if key in body:
            out[key] = body[key]
    if source:
        out["source"] = rev["source"]
    return out


def execution_json(e: dict, light: bool = False) -> dict:
    out = {
        "id": e["id"],
        "namespace": e["namespace"],
        "flowId": e["flowId"],
        "flowRevision": e["flowRevision"],
        "inputs": {},
        "labels": e["labels"],
        "state": state(e["current"], e["histories"]),
        "originalId": e["id"],
    }
    if e.get("trigger"):
        out["trigger"] = e["trigger"]
    if light:
        out["tenantId"] = "main"
        return out
    out["deleted"] = False
    out["metadata"] = {"attemptNumber": 1, "originalCreatedDate": e["histories"][0]["date"]}
    out["taskRunList"] = [
        {
            "id": tr["id"],
            "executionId": e["id"],
            "namespace": e["namespace"],
            "flowId": e["flowId"],
            "taskId": tr["taskId"],
            "attempts": [{"state": state(tr["current"], tr["histories"])}],
            "state": state(tr["current"], tr["histories"]),
        }
        for tr in e["taskRuns"]
    ]
    return out


def render(text: str, e: dict, outputs: dict) -> str:
    body = ((e.get("trigger") or {}).get("variables") or {}).get("body") or {}
    text = text.replace("{{ execution.id }}", e["id"]).replace("{{ flow.id }}", e["flowId"])
    text = text.replace("{{ trigger.body.name ?? 'nothing' }}", str(body.get("name", "nothing")) if isinstance(body, dict) else "nothing")
    return re.sub(r"\{\{ outputs\.(\w+)\.value \}\}", lambda m: str(outputs.get(m.group(1), {}).get("value", "")), text)


def run(e: dict, flow: dict) -> None:
    outputs: dict = {}
    with LOCK:
        change(e, "RUNNING")
        LOCK.notify_all()
    for task in flow["tasks"]:
        tr = {"id": new_id(), "taskId": task["id"], "current": "CREATED", "histories": [{"state": "CREATED", "date": now()}]}
        with LOCK:
            if e["kill"]:
                break
            e["taskRuns"].append(tr)
            change(tr, "RUNNING")
            LOCK.notify_all()
        kind = task["type"].rsplit(".", 1)[-1]
        if kind == "Sleep":
            seconds = float(re.fullmatch(r"PT(\d+(?:\.\d+)?)S", task["duration"]).group(1))
            end = time.monotonic() + seconds
            with LOCK:
                while not e["kill"] and time.monotonic() < end:
                    LOCK.wait(end - time.monotonic())
        if kind == "Return":
            outputs[task["id"]] = {"value": render(task["format"], e, outputs)}
        with LOCK:
            change(tr, "KILLED" if e["kill"] else "SUCCESS")
            LOCK.notify_all()
    with LOCK:
        e["taskOutputs"] = outputs
        e["flowOutputs"] = {o["id"]: render(o["value"], e, outputs) for o in flow.get("outputs", [])}
        change(e, "KILLED" if e["kill"] else "SUCCESS")
        LOCK.notify_all()


def start(ns: str, fid: str, trigger: dict | None = None) -> dict:
    revs = FLOWS[(ns, fid)]
    eid = new_id()
    e = {
        "id": eid, "namespace": ns, "flowId": fid, "flowRevision": len(revs),
        "labels": [{"key": "system.correlationId", "value": eid}],
        "current": "CREATED", "histories": [{"state": "CREATED", "date": now()}],
        "taskRuns": [], "kill": False, "trigger": trigger,
    }
    EXECUTIONS[eid] = e
    threading.Thread(target=run, args=(e, revs[-1]["body"]), daemon=True).start()
    return e


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    auth = None

    def log_message(self, *args):
        pass

    def send(self, status: int, body=None, ctype="application/json"):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self, method: str):
        url = urlsplit(self.path)
        query = parse_qsl(url.query, keep_blank_values=True)
        q = dict(query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.auth and self.headers.get("Authorization") != self.auth:
            return self.send(401, {"message": "Unauthorized"})
        parts = [unquote(p) for p in url.path.split("/") if p]
        if parts[:3] != ["api", "v1", "main"]:
            return self.send(404, {"message": "not found"})
        p = parts[3:]
        with LOCK:
            return self.route(method, p, q, query, raw)

    def route(self, method, p, q, query, raw):
        if p == ["flows"] and method == "POST":
            body = yaml.safe_load(raw)
            key = (body["namespace"], body["id"])
            if key in FLOWS and not FLOWS[key][-1]["deleted"]:
                return self.send(409, {"message": "exists"})
            FLOWS.setdefault(key, []).append({"body": body, "source": raw.decode(), "deleted": False, "updated": now()})
            revs = FLOWS[key]
            return self.send(200, flow_json(*key, revs[-1], len(revs), True))
        if p == ["flows", "validate"] and method == "POST":
            out = []
            for i, doc in enumerate(re.split(r"\n---\n", raw.decode())):
                body = yaml.safe_load(doc)
                v = {"index": i, "flow": body.get("id"), "namespace": body.get("namespace"), "outdated": False,
                     "deprecationPaths": [], "warnings": [], "infos": []}
                if not body.get("tasks"):
                    v["constraints"] = "tasks: must not be empty"
                out.append(v)
            return self.send(200, out)
        if p == ["flows", "search"] and method == "GET":
            ns = q.get("filters[namespace][EQUALS]")
            found = [(k, r) for k, r in sorted(FLOWS.items()) if not r[-1]["deleted"] and (ns is None or k[0] == ns)]
            page, size = int(q.get("page", 1)), int(q.get("size", 10))
            chunk = found[(page - 1) * size: page * size]
            return self.send(200, {"results": [flow_json(*k, r[-1], len(r), False) for k, r in chunk], "total": len(found)})
        if len(p) == 2 and p[0] == "flows" and method == "GET":
            return self.send(200, [flow_json(*k, r[-1], len(r), False) for k, r in sorted(FLOWS.items())
                                   if k[0] == p[1] and not r[-1]["deleted"]])
        if len(p) >= 3 and p[0] == "flows":
            key = (p[1], p[2])
            revs = FLOWS.get(key)
            if not revs or (revs[-1]["deleted"] and len(p) == 3):
                return self.send(404, {"message": "flow not found"})
            if len(p) == 4 and p[3] == "revisions":
                return self.send(200, [flow_json(*key, r, i + 1, True) for i, r in enumerate(revs)])
            if method == "GET":
                n = int(q.get("revision", len(revs)))
                return self.send(200, flow_json(*key, revs[n - 1], n, True))
            if method == "PUT":
                revs.append({"body": yaml.safe_load(raw), "source": raw.decode(), "deleted": False, "updated": now()})
                return self.send(200, flow_json(*key, revs[-1], len(revs), True))
            if method == "DELETE":
                revs.append({**revs[-1], "deleted": True, "updated": now()})
                return self.send(204)
        if p[:2] == ["executions", "search"]:
            return self.search(q, query)
        if p[:2] == ["executions", "webhook"] and len(p) == 5:
            revs = FLOWS.get((p[2], p[3]))
            hook = revs and not revs[-1]["deleted"] and next(
                (t for t in revs[-1]["body"].get("triggers", []) if t.get("key") == p[4]), None)
            if not hook:
                return self.send(404, {"message": "no webhook"})
            body = json.loads(raw) if raw else None
            trigger = {"id": hook["id"], "type": hook["type"], "variables": {"body": body, "headers": {}, "parameters": {}}}
            e = start(p[2], p[3], trigger)
            out = execution_json(e, light=True)
            return self.send(200, {k: out[k] for k in ("tenantId", "id", "namespace", "flowId", "flowRevision", "trigger", "labels", "state")})
        if len(p) == 3 and p[0] == "executions" and method == "POST":
            revs = FLOWS.get((p[1], p[2]))
            if not revs or revs[-1]["deleted"]:
                return self.send(404, {"message": "flow not found"})
            e = start(p[1], p[2])
            if q.get("wait") == "true":
                while e["current"] not in TERMINAL:
                    LOCK.wait(1)
            return self.send(200, execution_json(e))
        if len(p) >= 2 and p[0] == "executions":
            e = EXECUTIONS.get(p[1])
            if e is None:
                return self.send(404, {"message": "execution not found"})
            if len(p) == 2 and method == "GET":
                return self.send(200, execution_json(e))
            if p[2:] == ["actions", "kill"] and method == "DELETE":
                if e["current"] in TERMINAL:
                    return self.send(409, {"message": "already ended"})
                e["kill"] = True
                change(e, "KILLING")
                LOCK.notify_all()
                return self.send(200, execution_json(e))
            if p[2:] == ["actions", "labels"] and method == "POST":
                given = [{"key": lb["key"], "value": lb["value"]} for lb in json.loads(raw)]
                e["labels"] = [lb for lb in e["labels"] if lb["key"].startswith("system.")] + given
                return self.send(200, execution_json(e))
            if p[2:] == ["follow"] and method == "GET":
                return self.follow(e)
        if p[:2] == ["outputs", "executions"] and len(p) == 3 and p[2] in EXECUTIONS:
            return self.send(200, EXECUTIONS[p[2]].get("flowOutputs", {}))
        if p[:2] == ["outputs", "tasks"] and len(p) in (3, 4) and p[2] in EXECUTIONS:
            e = EXECUTIONS[p[2]]
            outs = e.get("taskOutputs", {})
            if len(p) == 3:
                return self.send(200, [{"taskId": tr["taskId"], "taskRunId": tr["id"]} for tr in e["taskRuns"] if tr["taskId"] in outs])
            tr = next((t for t in e["taskRuns"] if t["id"] == p[3]), None)
            if tr is not None:
                return self.send(200, outs.get(tr["taskId"], {}))
        return self.send(404, {"message": f"no route for {method} /{'/'.join(p)}"})

    def search(self, q, query):
        found = list(EXECUTIONS.values())
        for k, v in query:
            m = re.fullmatch(r"filters\[(\w+)\]\[EQUALS\]", k)
            if m:
                field = {"namespace": "namespace", "flowId": "flowId", "state": "current"}[m.group(1)]
                found = [e for e in found if e[field] == v]
        sort = q.get("sort", "state.startDate:desc")
        found.sort(key=lambda e: e["histories"][0]["date"], reverse=sort.endswith(":desc"))
        page, size = int(q.get("page", 1)), int(q.get("size", 10))
        chunk = found[(page - 1) * size: page * size]
        return self.send(200, {"results": [execution_json(e, light=True) for e in chunk], "total": len(found)})

    def follow(self, e):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

        def emit(event_id, data):
            self.wfile.write(f"id: {event_id}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

        emit("start", {"id": e["id"], "deleted": False})
        seen = None
        while True:
            snapshot = json.dumps(execution_json(e))
            if e["current"] in TERMINAL:
                emit("end", execution_json(e))
                return
            if snapshot != seen:
                emit("progress", execution_json(e))
                seen = snapshot
            LOCK.wait(1)

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_DELETE(self):
        self.handle_any("DELETE")


def main():
    bind = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:18999"
    host, port = bind.rsplit(":", 1)
    if len(sys.argv) > 3:
        Handler.auth = "Basic " + base64.b64encode(f"{sys.argv[2]}:{sys.argv[3]}".encode()).decode()
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    print(f"listening on http://{host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
