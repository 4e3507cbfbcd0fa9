"""gobgpd's gRPC on a unix socket: a real gobgpd, started twice on one path."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bgplb.gobgpd import clear_stale, socket_of


def test_targets() -> None:
    assert socket_of("unix:///run/x.sock") == Path("/run/x.sock")
    assert socket_of("127.0.0.1:50051") is None


def test_only_a_socket_is_cleared(tmp_path: Path) -> None:
    path = tmp_path / "gobgpd.sock"
    clear_stale(path)  # nothing there: fine
    path.write_text("not a socket")
    with pytest.raises(FileExistsError, match="not a socket"):
        clear_stale(path)
    path.unlink()
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
    clear_stale(path)
    assert not path.exists()


def test_tcp_api_hosts_are_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bgplb.cli", "gobgpd", "--socket=/nonexistent/s", "--",
         "--api-hosts=127.0.0.1:50051"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--api-hosts" in done.stderr


def _serve(path: Path, log: Path) -> subprocess.Popen[bytes]:
    # Started in a network namespace of its own: gobgpd without a BGP config opens no
    # port, but nothing of a test reaches the host's network.
    return subprocess.Popen(
        ["unshare", "--net", sys.executable, "-m", "bgplb.cli", "gobgpd", f"--socket={path}",
         "--", "--pprof-disable", "--log-plain"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_a_gobgpd_restarted_after_a_crash_serves_again(tmp_path: Path) -> None:
    """A killed gobgpd leaves its socket behind, and a plain gobgpd then exits with
    "address already in use"; `bgplb gobgpd` clears it first."""
    path, log = tmp_path / "gobgpd.sock", tmp_path / "gobgpd.log"
    for _ in range(2):
        proc = _serve(path, log)
        try:
            deadline = time.monotonic() + 15
            while True:
                out = subprocess.run(
                    ["gobgp", f"--target=unix://{path}", "global"],
                    capture_output=True, text=True, check=False, timeout=10,
                )  # fmt: skip
                if out.returncode == 0 or time.monotonic() > deadline or proc.poll() is not None:
                    break
                time.sleep(0.2)
            assert out.returncode == 0, (out.stdout, log.read_text())
            assert proc.poll() is None
        finally:
            proc.kill()  # as a crash: the socket stays
            proc.wait()
        assert path.is_socket()
