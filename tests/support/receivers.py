"""Local receivers for notifications: a real SMTP server (aiosmtpd) and an HTTP webhook sink.

Both speak the real wire protocol on a loopback port; what they received is kept for asserts.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Mailbox:
    """Every message the SMTP server accepted: envelope recipients and the parsed message."""

    host: str = "127.0.0.1"
    port: int = 0
    received: list[tuple[list[str], Message]] = field(default_factory=list)

    def to(self, address: str) -> list[Message]:
        return [message for rcpt, message in self.received if address in rcpt]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        self.received.append((list(envelope.rcpt_tos), message_from_bytes(content)))
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server() -> Iterator[Mailbox]:
    """An aiosmtpd SMTP server on a free loopback port."""
    mailbox = Mailbox(port=_free_port())
    controller = Controller(mailbox, hostname=mailbox.host, port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class WebhookInbox:
    """JSON bodies posted to the receiver, by path."""

    url: str = ""
    posts: list[tuple[str, Any]] = field(default_factory=list)
    status: int = 200  # what the receiver answers (set 500 to make deliveries fail)

    def at(self, path: str) -> list[Any]:
        return [body for where, body in self.posts if where == path]


@contextmanager
def webhook_receiver() -> Iterator[WebhookInbox]:
    """An HTTP server accepting incoming-webhook posts (as Slack, Mattermost or Teams would)."""
    inbox = WebhookInbox()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            if inbox.status < 400:
                inbox.posts.append((self.path, body))
            payload = b"ok"
            self.send_response(inbox.status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    inbox.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield inbox
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
