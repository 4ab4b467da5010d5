"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for the API agent tests.

Each request takes the next scripted response (the last one repeats); every request is recorded
with its headers, JSON body and arrival time, so tests can check what the client sent and when.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Scripted:
    status: int = 200
    body: str = ""
    headers: dict = field(default_factory=dict)
    delay_s: float = 0.0
    trickle_s: float = 0.0  # a pause before each byte of the body (a server that trickles its reply)


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict
    body: dict
    at: float


def ok(content: str, prompt_tokens: int = 100, completion_tokens: int = 20) -> Scripted:
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return Scripted(200, json.dumps(body))


def error(status: int, message: str, headers: dict | None = None, delay_s: float = 0.0) -> Scripted:
    return Scripted(status, json.dumps({"error": {"message": message, "type": "test"}}), headers or {}, delay_s)


class ChatServer:
    def __init__(self) -> None:
        self.script: list[Scripted] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with server._lock:
                    server.seen.append(Seen(self.path, dict(self.headers), json.loads(raw or b"{}"), time.monotonic()))
                    i = len(server.seen) - 1
                    reply = server.script[min(i, len(server.script) - 1)]
                time.sleep(reply.delay_s)
                # A reply may quote the request's Authorization header (as a leaky server would).
                body = reply.body.replace("$AUTH", self.headers.get("Authorization", "")).encode()
                try:
                    self.send_response(reply.status)
                    for k, v in {"Content-Type": "application/json", **reply.headers}.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if reply.trickle_s:
                        for i in range(len(body)):
                            time.sleep(reply.trickle_s)
                            self.wfile.write(body[i : i + 1])
                            self.wfile.flush()
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            do_GET = do_POST  # noqa: N815 - a client that follows a redirect by GET is recorded too

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def respond(self, *replies: Scripted) -> None:
        self.script = list(replies)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
