"""A scripted OpenAI-compatible server: Chat Completions over real HTTP, replaying a script.

Tests start it, point the real openai client at ``server.base_url`` and give it a list of
:class:`Step` s, one per HTTP request received: a plan (wrapped as a chat completion with
usage), raw text content, an error status with headers (``Retry-After``), a delay (to
provoke client timeouts), a malformed body, or a refusal of ``response_format``. Every
request body and its headers are recorded for assertions (what the prompt held).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Step:
    """What the server does for one request."""

    plan: dict[str, Any] | None = None  # answered as the message content (JSON)
    content: str | None = None  # raw message content (e.g. malformed JSON)
    status: int = 200
    error: str | None = None  # error message for non-200 statuses
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    raw_body: bytes | None = None  # the whole HTTP body, as is
    reject_schema: bool = False  # 400 when the request asks for response_format json_schema
    prompt_tokens: int | None = None  # default: request size / 4
    cached_tokens: int = 0
    completion_tokens: int | None = None  # default: content size / 4


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    text: str

    @property
    def prompt(self) -> str:
        """Every message's content, joined: what the model was shown."""
        messages = (self.body or {}).get("messages", [])
        return "\n".join(str(message.get("content", "")) for message in messages)


class ScriptedLLM:
    """The server; use :func:`scripted_llm` to run one for a test."""

    def __init__(self, script: list[Step] | None = None) -> None:
        self.script: list[Step] = list(script or [])
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(self, *steps: Step) -> None:
        with self._lock:
            self.script.extend(steps)

    def _next(self, received: Received) -> Step | None:
        with self._lock:
            self.received.append(received)
            return self.script.pop(0) if self.script else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet test output

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                text = self.rfile.read(length).decode("utf-8", "replace")
                try:
                    body = json.loads(text)
                except json.JSONDecodeError:
                    body = None
                received = Received(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body, text
                )
                if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                step = server._next(received)
                if step is None:
                    self._send(
                        500,
                        {"error": {"message": "the test script is exhausted"}},
                        {"x-should-retry": "false"},
                    )
                    return
                if step.delay:
                    time.sleep(step.delay)
                # the client may have given up (timeout): then there is nothing to answer
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._answer(step, body or {}, text)

            def _answer(self, step: Step, body: dict[str, Any], text: str) -> None:
                wants_schema = (body.get("response_format") or {}).get("type") == "json_schema"
                if step.reject_schema and wants_schema:
                    self._send(
                        400,
                        {
                            "error": {
                                "message": "response_format json_schema is not supported",
                                "type": "invalid_request_error",
                            }
                        },
                    )
                    return
                if step.raw_body is not None:
                    self._send_bytes(step.status, step.raw_body, step.headers)
                    return
                if step.status != 200:
                    self._send(
                        step.status,
                        {"error": {"message": step.error or "scripted error"}},
                        step.headers,
                    )
                    return
                content = json.dumps(step.plan) if step.plan is not None else (step.content or "")
                prompt_tokens = (
                    step.prompt_tokens if step.prompt_tokens is not None else len(text) // 4
                )
                completion_tokens = (
                    step.completion_tokens
                    if step.completion_tokens is not None
                    else len(content) // 4
                )
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{len(server.received)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "scripted"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {
                            "prompt_tokens": prompt_tokens,
                            "completion_tokens": completion_tokens,
                            "total_tokens": prompt_tokens + completion_tokens,
                            "prompt_tokens_details": {"cached_tokens": step.cached_tokens},
                        },
                    },
                    step.headers,
                )

            def _send(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                self._send_bytes(status, json.dumps(payload).encode(), headers or {})

            def _send_bytes(self, status: int, data: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


@contextmanager
def scripted_llm(*steps: Step) -> Iterator[ScriptedLLM]:
    """A running scripted server for the duration of the block."""
    server = ScriptedLLM(list(steps))
    server.start()
    try:
        yield server
    finally:
        server.stop()
