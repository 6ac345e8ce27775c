"""A local stand-in for the VirusTotal v3 API: real HTTP on 127.0.0.1, scripted answers.

    with VTServer() as vt:
        vt.script("/ip_addresses/203.0.113.7", [(429, {"Retry-After": "1"}), (500, {})])
        ... url = vt.url ...
        vt.requests  # [(monotonic time, path, x-apikey header), ...]

Every path answers 200 with a v3-shaped object unless scripted; scripted
answers are used first, in order. Names in ``unknown`` answer 404, and with
``refuse`` set every request answers 401.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

KEY = "0123456789abcdef" * 4


def scores(name: str) -> dict[str, int]:
    """The analysis counts the server gives ``name``: stable, and different per name."""
    seed = zlib.crc32(name.encode())
    return {"malicious": seed % 7, "suspicious": seed % 3, "harmless": 60 + seed % 11,
            "undetected": 20 + seed % 5, "timeout": 0}


def reputation(name: str) -> int:
    return int(zlib.crc32(name.encode()) % 41) - 20


def body_for(path: str) -> dict[str, Any]:
    kind, _, name = path.strip("/").partition("/")
    attributes: dict[str, Any] = {"last_analysis_stats": scores(name),
                                  "reputation": reputation(name), "tags": []}
    if kind == "ip_addresses":
        attributes.update(as_owner="Example Transit", asn=64500, country="NL")
        object_type = "ip_address"
    else:
        object_type = "domain"
    return {"data": {"id": name, "type": object_type, "attributes": attributes}}


class VTServer:
    def __init__(self) -> None:
        self.requests: list[tuple[float, str, str]] = []
        self.unknown: set[str] = set()
        self.refuse = False
        self._scripts: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body = server.answer(self.path, self.headers.get("x-apikey", ""))
                data = json.dumps(body).encode()
                self.send_response(status)
                for key, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/v3"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                        daemon=True)

    def script(self, path: str, answers: list[tuple[int, dict[str, str]]]) -> None:
        """Answer the next requests for ``path`` (e.g. /ip_addresses/1.2.3.4) like this."""
        with self._lock:
            self._scripts.setdefault(f"/api/v3{path}", []).extend(answers)

    def answer(self, path: str, key: str) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self._lock:
            self.requests.append((time.monotonic(), path.removeprefix("/api/v3"), key))
            scripted = self._scripts.get(path)
            if scripted:
                status, headers = scripted.pop(0)
                return status, headers, {"error": {"code": f"Scripted{status}",
                                                   "message": "scripted answer"}}
        if self.refuse or key != KEY:
            return 401, {}, {"error": {"code": "WrongCredentialsError",
                                       "message": "Wrong API key"}}
        name = path.rsplit("/", 1)[-1]
        if name in self.unknown:
            return 404, {}, {"error": {"code": "NotFoundError", "message": f"{name} not found"}}
        return 200, {}, body_for(path.removeprefix("/api/v3"))

    def paths(self) -> list[str]:
        with self._lock:
            return [path for _, path, _ in self.requests]

    def times(self) -> list[float]:
        with self._lock:
            return [when for when, _, _ in self.requests]

    def __enter__(self) -> VTServer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
