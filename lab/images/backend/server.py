"""The lab's backend: answers every HTTP GET with its Pod's and node's names, so a
client sees which Pod on which node served it. Standard library only."""

import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = f"{os.environ.get('POD_NAME', '?')} on {os.environ.get('NODE_NAME', '?')}\n".encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, format: str, *args: object) -> None:
        pass


GRACE = float(os.environ.get("GRACE_SECONDS", "3"))
"""Seconds it keeps answering after SIGTERM, as a well-behaved backend (or a preStop
sleep) does: the Pod's endpoint stops taking new connections on every node's
kube-proxy within about a second, and requests already sent to it still get an
answer. Without it an evicted Pod (kubectl drain) fails the requests in flight."""


def _stop(*_: object) -> None:
    # PID 1 of its container: no default action on SIGTERM, so exit on it explicitly.
    threading.Timer(GRACE, lambda: os._exit(0)).start()


signal.signal(signal.SIGTERM, _stop)
ThreadingHTTPServer(("", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
