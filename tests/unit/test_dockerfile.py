"""The Dockerfile is linted (there is no Docker engine here to build it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    done = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_images_run_as_intended() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = text.split("\nFROM ")
    assert [s.split()[2] for s in stages[1:]] == ["build", "controller", "agent"]
    assert "USER 65532:65532" in stages[2], "the controller image runs as non-root"
    assert "gobgpd" in stages[3], "the agent image carries gobgpd from Debian"
    assert "protogen" in stages[1], "the GoBGP stubs are generated into the image"
