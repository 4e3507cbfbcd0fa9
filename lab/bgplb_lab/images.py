"""The lab's container images, built here with Debian's buildah and no registry.

- a base equivalent to `python:3.11-slim-bookworm` (which cannot be pulled here):
  `mmdebstrap --variant=minbase` of bookworm with python3 and its venv module;
- the project's `controller` and `agent` images from the repository's own Dockerfile
  with `--build-arg BASE_IMAGE=` that base;
- the demo backend (lab/images/backend) the same way;
- a sandbox ("pause") image: a static Go program tagged registry.k8s.io/pause:3.10.

Each image is saved as an archive in the cache, named by a hash of its inputs, and
rebuilt only when they change; nodes import the archives into their containerd.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bgplb_lab.kube import ROOT, cache_dir
from bgplb_lab.nodes import PAUSE_IMAGE

IMAGES = Path(__file__).resolve().parents[1] / "images"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# What the Dockerfile copies into the build: a change to any of these rebuilds.
PROJECT_INPUTS = (
    "Dockerfile",
    "pyproject.toml",
    "constraints.txt",
    "README.md",
    "operator",
    "webhooks",
)


@dataclass(frozen=True)
class Image:
    name: str
    """The reference the nodes know it by (repository:tag)."""
    archive: Path

    @property
    def repository(self) -> str:
        return self.name.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.name.rsplit(":", 1)[1]


def _hash(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:12]


def _tree_hash(root: Path, paths: tuple[str, ...]) -> str:
    """Contents of the files under `paths` that git tracks or would track."""
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-co", "--exclude-standard", "--", *paths],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    parts = []
    for rel in sorted(listed):
        path = root / rel
        if path.is_file():
            parts.append(rel.encode() + b"\0" + path.read_bytes())
    return _hash(*parts)


class Builder:
    """buildah with its own storage in the cache, so the machine's is never touched."""

    def __init__(self, cache: Path | None = None, log: Path | None = None) -> None:
        self.cache = (cache or cache_dir()) / "images"
        self.storage = self.cache / "storage"
        self.log = log

    def buildah(self, *args: str, timeout: float = 1800) -> str:
        cmd = [
            "buildah",
            "--root", str(self.storage / "root"),
            "--runroot", str(self.storage / "run"),
            "--storage-driver", "overlay",
            *args,
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if self.log is not None:
            with self.log.open("a") as out:
                out.write(f"$ {' '.join(cmd)}\n{done.stdout}{done.stderr}\n")
        if done.returncode != 0:
            raise RuntimeError(f"buildah {args[0]} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def has(self, name: str) -> bool:
        try:
            self.buildah("inspect", "--type", "image", name)
        except RuntimeError:
            return False
        return True

    def save(self, name: str, archive: Path) -> Image:
        tmp = archive.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        self.buildah("push", name, f"docker-archive:{tmp}:{name}")
        tmp.rename(archive)
        return Image(name, archive)

    # --- the images --------------------------------------------------------------

    def base(self) -> str:
        """The bookworm + python3 base, by mmdebstrap; its name carries its inputs."""
        key = _hash(SUITE.encode(), MIRROR.encode(), " ".join(BASE_PACKAGES).encode())
        name = f"localhost/bgplb-base:{SUITE}-{key}"
        if self.has(name):
            return name
        self.cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.cache) as work:
            rootfs = Path(work) / "rootfs.tar"
            subprocess.run(
                [
                    "mmdebstrap",
                    "--variant=minbase",
                    "--quiet",
                    f"--include={','.join(BASE_PACKAGES)}",
                    "--format=tar",
                    SUITE,
                    str(rootfs),
                    MIRROR,
                ],
                check=True,
                timeout=900,
            )
            container = self.buildah("from", "scratch").strip()
            try:
                self.buildah("add", container, str(rootfs), "/")
                self.buildah(
                    "config",
                    "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "--env", "LANG=C.UTF-8",
                    "--cmd", "python3",
                    container,
                )  # fmt: skip
                self.buildah("commit", "--rm", container, name)
            except BaseException:
                self.buildah("rm", container)
                raise
        return name

    def _trust(self) -> list[str]:
        """pip inside the build trusts what this machine trusts (its registries may sit
        behind a TLS proxy whose CA only the host's bundle has): the host's bundle and
        a pip.conf naming it are mounted for the RUN steps, never stored in a layer."""
        bundle = Path("/etc/ssl/certs/ca-certificates.crt")
        if not bundle.is_file():
            return []
        conf = self.cache / "pip.conf"
        conf.write_text("[global]\ncert = /etc/ssl/certs/host-ca-bundle.crt\n")
        return [
            "--volume", f"{bundle}:/etc/ssl/certs/host-ca-bundle.crt:ro",
            "--volume", f"{conf}:/etc/pip.conf:ro",
        ]  # fmt: skip

    def _bud(self, name: str, context: Path, base: str, *extra: str) -> None:
        self.buildah(
            "bud",
            "--isolation", "chroot",
            "--pull-never",
            "--layers",
            *self._trust(),
            "--build-arg", f"BASE_IMAGE={base}",
            "-f", str(context / "Dockerfile"),
            "-t", name,
            *extra,
            str(context),
        )  # fmt: skip

    def project(self, base: str) -> tuple[Image, Image]:
        """The controller and agent images from the repository's Dockerfile."""
        key = _hash(base.encode(), _tree_hash(ROOT, PROJECT_INPUTS).encode())
        images = []
        for target, repo in (("controller", "localhost/bgplb"), ("agent", "localhost/bgplb-agent")):
            name = f"{repo}:lab-{key}"
            archive = self.cache / f"{repo.rsplit('/', 1)[1]}-{key}.tar"
            if not archive.exists():
                self._bud(name, ROOT, base, "--target", target)
                self.save(name, archive)
            images.append(Image(name, archive))
        return images[0], images[1]

    def backend(self, base: str) -> Image:
        context = IMAGES / "backend"
        key = _hash(base.encode(), _tree_hash(context, (".",)).encode())
        name = f"localhost/bgplb-lab-backend:{key}"
        archive = self.cache / f"backend-{key}.tar"
        if not archive.exists():
            self._bud(name, context, base)
            self.save(name, archive)
        return Image(name, archive)

    def pause(self) -> Image:
        context = IMAGES / "pause"
        key = _hash(_tree_hash(context, (".",)).encode())
        archive = self.cache / f"pause-{key}.tar"
        if archive.exists():
            return Image(PAUSE_IMAGE, archive)
        with tempfile.TemporaryDirectory() as work:
            binary = Path(work) / "pause"
            subprocess.run(
                ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(binary), "."],
                cwd=context,
                env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"},
                check=True,
            )
            container = self.buildah("from", "scratch").strip()
            self.buildah("copy", container, str(binary), "/pause")
            self.buildah("config", "--entrypoint", '["/pause"]', container)
            self.buildah("commit", "--rm", container, PAUSE_IMAGE)
        return self.save(PAUSE_IMAGE, archive)

    def all(self) -> list[Image]:
        try:
            base = self.base()
            controller, agent = self.project(base)
            images = [self.pause(), controller, agent, self.backend(base)]
        finally:
            self.release()
        self.prune(images)
        return images

    def prune(self, keep: list[Image]) -> None:
        """Archives and images of earlier inputs go: a source change must not leave a
        gigabyte behind each time."""
        wanted = {image.archive for image in keep}
        for archive in self.cache.glob("*.tar"):
            if archive not in wanted:
                archive.unlink()
        with contextlib.suppress(RuntimeError):
            self.buildah("rmi", "--prune")
        unmount_under(self.storage)

    def release(self) -> None:
        """Remove working containers a failed build left, and unmount the storage:
        buildah keeps its overlay directory mounted after it exits."""
        with contextlib.suppress(RuntimeError):
            self.buildah("rm", "--all")
        unmount_under(self.storage)


def unmount_under(path: Path) -> None:
    """Unmount everything mounted at or below `path`, deepest first."""
    prefix = str(path.resolve())
    mounts = [
        line.split()[1]
        for line in Path("/proc/mounts").read_text().splitlines()
        if line.split()[1] == prefix or line.split()[1].startswith(prefix + "/")
    ]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", mount], capture_output=True, check=False)
