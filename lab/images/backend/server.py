"""The lab's backend: answers every HTTP GET with its Pod's and node's names, so a
client sees which Pod on which node served it. Standard library only."""

import os
import signal
import sys
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


# PID 1 of its container: no default action on SIGTERM, so exit on it explicitly.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
ThreadingHTTPServer(("", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
