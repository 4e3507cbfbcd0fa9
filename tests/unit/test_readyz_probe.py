"""The control-plane advertiser's readiness probe: one connection kept between
probes (a new TLS handshake four times a second cost each advertiser ~11 % of a
core while idle), a fresh one after the server went away."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bgplb.advertise import ReadyzProbe


class Server:
    """A local HTTP/1.1 server answering /readyz with `status`, counting connections."""

    def __init__(self, port: int = 0) -> None:
        self.status = 200
        self.connections = 0
        self.sockets: list[socket.socket] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive

            def handle(self) -> None:
                outer.connections += 1
                outer.sockets.append(self.request)
                super().handle()

            def do_GET(self) -> None:
                body = b"ok" if outer.status == 200 else b"not ready"
                self.send_response(outer.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """As the process exiting: the listener and every open connection closed."""
        self.httpd.shutdown()
        self.httpd.server_close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.stop()


def test_probes_share_one_connection(server: Server) -> None:
    probe = ReadyzProbe(f"http://127.0.0.1:{server.port}/readyz")
    try:
        assert all(probe() for _ in range(20))
        assert server.connections == 1
        server.status = 500
        assert not probe()
    finally:
        probe.close()


def test_a_server_that_went_away_is_not_ready_and_is_reached_again_when_back() -> None:
    first = Server()
    probe = ReadyzProbe(f"http://127.0.0.1:{first.port}/readyz")
    try:
        assert probe()
        first.stop()
        assert not probe()
        assert not probe()
        again = Server(first.port)
        try:
            assert probe()
            assert again.connections == 1
        finally:
            again.stop()
    finally:
        probe.close()


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/readyz", "not a url", "https:///readyz"])
def test_a_url_it_cannot_probe_is_refused_at_once(url: str) -> None:
    with pytest.raises(ValueError, match="expected an http"):
        ReadyzProbe(url)
