"""A stand-in Kubernetes API server for the tests of ridecast.stack.cluster. It stands in for the API server only
because none can run here: no kube-apiserver (nor kind, k3s, kwok) can run on these machines
(../shared/PLATFORM.md), so the API server is the one thing replaced.

It is a real HTTP server on 127.0.0.1 that answers the REST paths of the custom resources ridecast uses, the way
the API server does (JSON objects carrying ``metadata.resourceVersion``, 201 on create, 404, 409 and 410 as
``Status`` objects), and records every request. A GET of a collection with ``?watch=true`` (or ``watch=1``)
streams watch events as the API server does: chunked newline-delimited JSON ``{"type": "ADDED" | "MODIFIED" |
"DELETED" | "ERROR", "object": {...}}``, only of the object named by ``fieldSelector=metadata.name=...``, only the
changes after ``resourceVersion`` (none given: an ADDED event of the object first), open until
``timeoutSeconds``. The ``kubernetes`` client, its configuration loading, serialisation, HTTP stack and ``Watch``
all run for real against it.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

PATH = re.compile(r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)"
                  r"(?:/(?P<name>[^/?]+))?$")

# what the watch script holds besides RayJob statuses (a dict: the RayJob changes to it, a MODIFIED event)
END_STREAM = "end-stream"  # the server ends this watch here, as when its timeoutSeconds has passed
GONE_EVENT = "gone-event"  # an ERROR event with a 410 Gone Status ends this watch (the history it needs is gone)
GONE_RESPONSE = "gone-response"  # the next watch request is answered HTTP 410 Gone (its resourceVersion too old)
DELETE = "delete"  # the RayJob is deleted: a DELETED event, and a GET then answers 404
WATCH_HOLD_S = 60  # how long a watch with nothing left to say stays open when the request sets no timeoutSeconds


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}

    @property
    def watch(self) -> bool:
        return self.query.get("watch", "").lower() in ("true", "1")


@dataclass
class FakeApiServer:
    """``objects[(plural, name)]`` are served on GET. The RayJob moves along as KubeRay would move it: each GET of
    it first applies the next of ``rayjob_statuses`` (the last one stays), and each watch of it plays the next
    items of ``rayjob_script`` in order (status dicts, END_STREAM, GONE_EVENT, GONE_RESPONSE, DELETE: see above),
    then stays open with nothing to say until its timeoutSeconds. Every change takes the next resourceVersion.
    ``fail_create`` answers POSTs with that HTTP status."""

    objects: dict[tuple[str, str], dict] = field(default_factory=dict)
    rayjob_statuses: list[dict] = field(default_factory=list)
    rayjob_script: list[dict | str] = field(default_factory=list)
    fail_create: int | None = None
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._rv = 0
        self.history: list[tuple[int, str, str, dict]] = []  # (resourceVersion, event type, plural, object)

    # ---- the store: every change takes the next resourceVersion and is kept for the watches

    def _change(self, plural: str, kind: str, obj: dict) -> dict:
        self._rv += 1
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        if kind == "DELETED":
            self.objects.pop((plural, obj["metadata"]["name"]), None)
        else:
            self.objects[(plural, obj["metadata"]["name"])] = obj
        self.history.append((self._rv, kind, plural, obj))
        return obj

    def _stored(self, key: tuple[str, str]) -> dict:
        """The object; one a test put in ``objects`` directly gets its first resourceVersion here."""
        if "resourceVersion" not in self.objects[key].get("metadata", {}):
            self._change(key[0], "ADDED", self.objects[key])
        return self.objects[key]

    def _set_status(self, key: tuple[str, str], status: dict) -> dict | None:
        obj = self._stored(key)
        if obj.get("status") == status:
            return None
        return self._change(key[0], "MODIFIED", {**obj, "status": status})

    def _script_step(self, name: str | None) -> tuple[str, dict] | str | None:
        """Play the next item of ``rayjob_script``: the event it makes, an end marker, or None (nothing to send)."""
        item = self.rayjob_script.pop(0)
        if item in (END_STREAM, GONE_EVENT):
            return item
        key = next((k for k in self.objects if k[0] == "rayjobs" and name in (None, k[1])), None)
        if key is None:
            return None
        if item == DELETE:
            return "DELETED", self._change("rayjobs", "DELETED", self._stored(key))
        changed = self._set_status(key, item)
        return ("MODIFIED", changed) if changed else None

    def __enter__(self) -> "FakeApiServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                                  "reason": reason, "code": code})

            def _record(self) -> re.Match | None:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                self.req = Request(self.command, self.path, dict(self.headers), body)
                server.requests.append(self.req)
                return PATH.match(self.path.split("?")[0])

            def do_POST(self) -> None:
                m = self._record()
                body = self.req.body
                if m is None or m["name"]:
                    return self._status(404, "NotFound", f"the server could not find {self.path}")
                if server.fail_create:
                    return self._status(server.fail_create, "Forbidden", f'{m["plural"]}.{m["group"]} is forbidden: '
                                        f'User "system:serviceaccount:x:y" cannot create resource "{m["plural"]}"')
                key = (m["plural"], body["metadata"]["name"])
                with server._lock:
                    if key in server.objects:
                        return self._status(409, "AlreadyExists", f"{key} already exists")
                    created = server._change(m["plural"], "ADDED", body)
                self._send(201, created)

            def do_GET(self) -> None:
                m = self._record()
                if m is None:
                    return self._status(404, "NotFound", f"the server could not find {self.path}")
                if not m["name"]:
                    return self._watch(m) if self.req.watch else self._list(m)
                key = (m["plural"], m["name"])
                with server._lock:
                    if key not in server.objects:
                        return self._status(404, "NotFound", f'{m["plural"]} "{m["name"]}" not found')
                    if m["plural"] == "rayjobs" and server.rayjob_statuses:
                        server._set_status(key, server.rayjob_statuses.pop(0))
                    obj = copy.deepcopy(server._stored(key))
                self._send(200, obj)

            def _selected(self) -> str | None:
                sel = self.req.query.get("fieldSelector")
                return sel.removeprefix("metadata.name=") if sel else None

            def _list(self, m: re.Match) -> None:
                name = self._selected()
                with server._lock:
                    items = [copy.deepcopy(server._stored((p, n))) for p, n in list(server.objects)
                             if p == m["plural"] and name in (None, n)]
                    rv = str(server._rv)
                self._send(200, {"apiVersion": f'{m["group"]}/{m["version"]}', "kind": "List", "items": items,
                                 "metadata": {"resourceVersion": rv}})

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _event(self, kind: str, obj: dict) -> None:
                self._chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

            def _watch(self, m: re.Match) -> None:
                q = self.req.query
                since = q.get("resourceVersion")
                with server._lock:
                    if server.rayjob_script[:1] == [GONE_RESPONSE]:
                        server.rayjob_script.pop(0)
                        return self._status(410, "Expired", f"too old resource version: {since} ({server._rv})")
                # 200 at once, then one chunk per event until the watch ends (HTTP/1.1 chunked, as the API server
                # answers a watch: the client reads each event as its chunk arrives)
                self.protocol_version = "HTTP/1.1"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    if self._stream(m, since):
                        server._closing.wait(int(q.get("timeoutSeconds") or WATCH_HOLD_S))
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client left

            def _stream(self, m: re.Match, since: str | None) -> bool:
                """Send this watch's events: the stored ones after ``since``, then the script's; False when the
                script ends the stream."""
                name = self._selected()

                def mine(plural: str, n: str) -> bool:
                    return plural == m["plural"] and name in (None, n)

                with server._lock:
                    if since in (None, "", "0"):
                        backlog = [("ADDED", copy.deepcopy(server._stored(k))) for k in list(server.objects)
                                   if mine(*k)]
                    else:
                        backlog = [(kind, o) for rv, kind, plural, o in server.history
                                   if rv > int(since) and mine(plural, o["metadata"]["name"])]
                for event in backlog:
                    self._event(*event)
                while True:
                    with server._lock:
                        if not server.rayjob_script or server.rayjob_script[0] == GONE_RESPONSE:
                            return True
                        step = server._script_step(name) if m["plural"] == "rayjobs" else None
                        rv = server._rv
                    if step == END_STREAM:
                        return False
                    if step == GONE_EVENT:
                        self._event("ERROR", {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                              "reason": "Expired", "code": 410,
                                              "message": f"too old resource version: {since} ({rv})"})
                        return False
                    if step is not None:
                        self._event(*step)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._closing.set()  # open watches end
        self._httpd.shutdown()
        self._httpd.server_close()

    def configuration(self) -> Any:
        """A real ``kubernetes.client.Configuration`` pointed at this server."""
        from kubernetes import client

        cfg = client.Configuration(host=self.url)
        cfg.retries = 0  # a refused connection fails the test at once
        return cfg

    def kubeconfig(self, path: Path, context: str = "fake", token: str = "t0ken") -> Path:
        """A kubeconfig file whose ``context`` points here with a bearer token (as `kind` writes one)."""
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": token}}],
            "contexts": [{"name": context, "context": {"cluster": "fake", "user": "fake", "namespace": "ridecast"}}],
        }))
        return path

    def of(self, method: str, plural: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and f"/{plural}" in r.path]

    def reads(self, plural: str) -> list[Request]:
        """The GETs of ``plural`` that are not watches."""
        return [r for r in self.of("GET", plural) if not r.watch]

    def watches(self, plural: str) -> list[Request]:
        return [r for r in self.of("GET", plural) if r.watch]
