"""gobgpd's gRPC on a unix socket, never on TCP.

On TCP 127.0.0.1 any host-network process could inject routes or read the peers'
MD5 passwords; a socket in a host directory is reachable only by what mounts that
directory. gobgpd refuses to start while a socket file from a gobgpd that died is
still there, so starting it clears one first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

UNIX = "unix://"
SPEAKER_SOCKET = Path("/run/bgplb/speaker/gobgpd.sock")
"""The Service speaker's (the chart's speaker DaemonSet)."""
CONTROL_PLANE_SOCKET = Path("/run/bgplb/control-plane/gobgpd.sock")
"""The control-plane speaker's (the bgpadvertiser static Pod)."""


def socket_of(target: str) -> Path | None:
    """The socket path of a `unix://` gRPC target; None for host:port."""
    return Path(target.removeprefix(UNIX)) if target.startswith(UNIX) else None


def clear_stale(path: Path) -> None:
    """Remove a socket left behind; refuse to touch anything else at that path."""
    if path.is_socket():
        path.unlink()
    elif path.exists():
        raise FileExistsError(f"{path}: exists and is not a socket; not removing it")


def exec_gobgpd(socket: Path, args: list[str]) -> NoReturn:
    """Become gobgpd serving gRPC on `socket` (the speaker container's command)."""
    clear_stale(socket)
    os.execvp("gobgpd", ["gobgpd", f"--api-hosts={UNIX}{socket}", *args])
