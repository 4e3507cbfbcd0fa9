"""CPU used by the machine's processes, from /proc: the one place the benches and
drills read it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def processes() -> dict[int, tuple[str, float]]:
    """PID → (kernel name, CPU seconds so far, user + system) of every process."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):  # gone meanwhile
            text = stat.read_text()
            name = text[text.index("(") + 1 : text.rindex(")")]
            fields = text[text.rindex(")") + 2 :].split()
            out[int(stat.parent.name)] = (name, (int(fields[11]) + int(fields[12])) / TICK)
    return out
