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
