"""A package index speaking PyPI's JSON API over real HTTP, replaying recorded documents.

The documents under tests/fixtures/pypi are trimmed recordings of real answers; scripted
names misbehave on purpose (a 500 before succeeding, a hang past the client's timeout).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RECORDINGS = Path(__file__).resolve().parent.parent / "fixtures" / "pypi"


@dataclass
class IndexScript:
    """How the fake index behaves, and what it was asked."""

    documents: dict[str, dict] = field(default_factory=dict)
    fail_first: dict[str, int] = field(default_factory=dict)  # name -> 500s before success
    hang_seconds: dict[str, float] = field(default_factory=dict)  # name -> delay
    requests: Counter[str] = field(default_factory=Counter)

    @classmethod
    def recorded(cls) -> IndexScript:
        documents = {path.stem: json.loads(path.read_text()) for path in RECORDINGS.glob("*.json")}
        return cls(documents=documents)


@contextmanager
def fake_index(script: IndexScript) -> Iterator[str]:
    """Serve ``script`` on a free loopback port; yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            if len(parts) != 3 or parts[0] != "pypi" or parts[2] != "json":
                self._send(404, {"message": "Not Found"})
                return
            name = parts[1]
            script.requests[name] += 1
            if script.hang_seconds.get(name):
                time.sleep(script.hang_seconds[name])
            if script.fail_first.get(name, 0) > 0:
                script.fail_first[name] -= 1
                self._send(503, {"message": "Service Unavailable"})
                return
            document = script.documents.get(name)
            if document is None:
                self._send(404, {"message": "Not Found"})
            else:
                self._send(200, document)

        def _send(self, status: int, body: dict) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            try:
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (the hang scenario); nothing to tell it

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
