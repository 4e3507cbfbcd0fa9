"""The webhook server's certificate follows its files (rotation without restart)."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from bgplb_lab.kube import CA
from bgplb_webhooks.server import RotatingCertificate


def _write(ca: CA, directory: Path, stamp: int) -> None:
    crt, key = ca.issue("bgplb-webhook.kube-system.svc", server=True)
    (directory / "tls.crt").write_bytes(crt)
    (directory / "tls.key").write_bytes(key)
    for name in ("tls.crt", "tls.key"):
        os.utime(directory / name, (stamp, stamp))


def test_certificate_is_reloaded_only_when_its_files_change(tmp_path: Path) -> None:
    ca = CA.create()
    _write(ca, tmp_path, 1_000)
    cert = RotatingCertificate(tmp_path / "tls.crt", tmp_path / "tls.key")
    assert isinstance(cert.context, ssl.SSLContext)
    assert not cert.reload()  # nothing changed
    _write(ca, tmp_path, 2_000)
    assert cert.reload()
    assert cert.loaded == (2_000, 2_000)


def test_stops_on_sigterm_as_pid_1_of_its_container(tmp_path: Path) -> None:
    """PID 1 of a PID namespace gets no default action for SIGTERM: found when the
    chart's webhook Pods took their whole grace period to stop on real kubelets."""
    import subprocess
    import sys
    import time

    _write(CA.create(), tmp_path, 1_000)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: x}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
    )
    log = tmp_path / "server.log"
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-m",
         "bgplb_webhooks.server", "--kubeconfig", str(kubeconfig), "--address", "127.0.0.1",
         "--port", "0", "--tls-cert", str(tmp_path / "tls.crt"),
         "--tls-key", str(tmp_path / "tls.key")],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while "serving" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "serving" in log.read_text(), log.read_text()
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        (server,) = children  # PID 1 inside its own namespace
        os.kill(int(server), 15)
        assert proc.wait(5) == 0
    finally:
        proc.kill()
        proc.wait()
