"""Every installer, run from an empty cache: a warm cache on the CI machine once hid a
broken installer (`make lab` failed on a fresh machine while CI was green).

The Go module and build caches stay shared (they hold downloads, not our steps), so
this costs minutes, not the first build's quarter of an hour. The Debian packages
are installed by `make` itself (scripts/install-system-deps.sh) before any test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bgplb_lab import metallb
from bgplb_lab.images import Builder
from bgplb_lab.kube import KUBE_VERSION, ROOT

BINARIES = (
    "kube-apiserver", "kubelet", "kube-controller-manager", "kube-scheduler", "kube-proxy",
    "kubectl",
)  # fmt: skip


def test_helm_from_an_empty_cache_with_a_relative_python(tmp_path: Path) -> None:
    venv_python = Path(sys.executable)
    relative = os.path.relpath(venv_python, ROOT)  # as the Makefile passes it
    done = subprocess.run(
        ["bash", "scripts/install-helm.sh"],
        cwd=ROOT,
        env={**os.environ, "BGPLB_CACHE": str(tmp_path), "PYTHON": relative},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    helm = Path(done.stdout.strip())
    assert helm.is_relative_to(tmp_path)
    version = subprocess.run(
        [helm, "version", "--short"], capture_output=True, text=True, check=False
    )
    assert version.stdout.startswith("v"), version.stderr


def test_kubernetes_binaries_from_an_empty_cache(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-kube.sh"), KUBE_VERSION],
        env={**os.environ, "BGPLB_CACHE": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = Path(done.stdout.strip().splitlines()[-1])
    assert out == tmp_path / "kube" / KUBE_VERSION
    for binary in BINARIES:
        args = ["version", "--client"] if binary == "kubectl" else ["--version"]
        version = subprocess.run([out / binary, *args], capture_output=True, text=True, check=False)
        # kubectl adds a Kustomize line: the version ends one of the lines.
        lines = version.stdout.splitlines()
        assert any(line.endswith(KUBE_VERSION) for line in lines), (binary, version.stdout)


def test_images_from_an_empty_cache(tmp_path: Path) -> None:
    """mmdebstrap base, the Dockerfile's two targets on it, the backend and pause."""
    builder = Builder(cache=tmp_path, log=tmp_path / "build.log")
    try:
        images = builder.all()
        assert [i.name.split(":")[0] for i in images] == [
            "registry.k8s.io/pause",
            "localhost/bgplb",
            "localhost/bgplb-agent",
            "localhost/bgplb-lab-backend",
        ]
        for image in images:
            assert image.archive.is_relative_to(tmp_path)
            assert image.archive.stat().st_size > 0
        # The shipped images carry what their processes use and nothing of the lab.
        agent = images[2].name
        probe = builder.buildah(
            "run", "--isolation", "chroot", builder.buildah("from", agent).strip(), "--",
            "/opt/bgplb/bin/python", "-c",
            "import importlib.util as u, shutil; "
            "print(*(bool(u.find_spec(m)) for m in "
            "('bgplb.agent.speaker.stubs.gobgp_pb2', 'bgplb_lab', 'grpc_tools', 'cryptography')),"
            " bool(shutil.which('gobgpd')))",
        ).split()  # fmt: skip
        assert probe == ["True", "False", "False", "False", "True"]
        # A second run finds everything cached and builds nothing.
        log_size = (tmp_path / "build.log").stat().st_size
        assert builder.all() == images
        assert "bud" not in (tmp_path / "build.log").read_text()[log_size:]
    finally:
        builder.release()
        subprocess.run(["rm", "-rf", str(tmp_path)], check=False)
    assert not [m for m in Path("/proc/mounts").read_text().splitlines() if str(tmp_path) in m]


def test_metallb_images_from_an_empty_cache(tmp_path: Path) -> None:
    """MetalLB's controller and speaker, built from the Go module proxy into images of
    one static binary each (for the side-by-side drills)."""
    builder = Builder(cache=tmp_path, log=tmp_path / "build.log")
    try:
        controller, speaker = metallb.images(builder)
        for image, binary in ((controller, "/controller"), (speaker, "/speaker")):
            assert image.archive.is_relative_to(tmp_path)
            assert image.archive.stat().st_size > 1_000_000
            config = json.loads(builder.buildah("inspect", "--type", "image", image.name))
            assert config["OCIv1"]["config"]["Entrypoint"] == [binary]
    finally:
        builder.release()
        subprocess.run(["rm", "-rf", str(tmp_path)], check=False)
