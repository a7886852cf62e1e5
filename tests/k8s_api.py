"""A stand-in Kubernetes API server for the tests of ridecast.stack.cluster: no kube-apiserver (nor kind, k3s,
kwok) can run on these machines (../shared/PLATFORM.md), so the API server is the one thing replaced.

It is a real HTTP server on 127.0.0.1 that answers the REST paths of the custom resources ridecast uses, the way
the API server does (JSON objects, 201 on create, 404 and 409 as ``Status`` objects), and records every request.
The ``kubernetes`` client, its configuration loading, serialisation and HTTP stack all run for real against it.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PATH = re.compile(r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)"
                  r"(?:/(?P<name>[^/?]+))?$")


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeApiServer:
    """``objects[(plural, name)]`` are served on GET; a created RayJob then gets ``rayjob_statuses`` one per GET
    (the last repeats), as KubeRay would move it along. ``fail_create`` answers POSTs with that HTTP status."""

    objects: dict[tuple[str, str], dict] = field(default_factory=dict)
    rayjob_statuses: list[dict] = field(default_factory=list)
    fail_create: int | None = None
    requests: list[Request] = field(default_factory=list)

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
                server.requests.append(Request(self.command, self.path, dict(self.headers), body))
                return PATH.match(self.path.split("?")[0])

            def do_POST(self) -> None:
                m = self._record()
                body = server.requests[-1].body
                if m is None or m["name"]:
                    return self._status(404, "NotFound", f"the server could not find {self.path}")
                if server.fail_create:
                    return self._status(server.fail_create, "Forbidden", f'{m["plural"]}.{m["group"]} is forbidden: '
                                        f'User "system:serviceaccount:x:y" cannot create resource "{m["plural"]}"')
                key = (m["plural"], body["metadata"]["name"])
                if key in server.objects:
                    return self._status(409, "AlreadyExists", f"{key} already exists")
                server.objects[key] = body
                self._send(201, body)

            def do_GET(self) -> None:
                m = self._record()
                key = (m["plural"], m["name"]) if m else None
                if key not in server.objects:
                    return self._status(404, "NotFound", f'{m["plural"] if m else "?"} "{key}" not found')
                obj = dict(server.objects[key])
                if m["plural"] == "rayjobs" and server.rayjob_statuses:
                    obj["status"] = server.rayjob_statuses.pop(0) if len(server.rayjob_statuses) > 1 \
                        else server.rayjob_statuses[0]
                self._send(200, obj)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
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
