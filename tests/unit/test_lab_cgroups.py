"""The lab's teardown reads a node's cgroups while the runtime may still remove some."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from bgplb_lab import nodes


def test_a_cgroup_removed_while_it_is_read_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "n1" / "pod-a").mkdir(parents=True)
    (tmp_path / "n1" / "pod-a" / "cgroup.procs").write_text("123\n456\n")
    (tmp_path / "n1" / "pod-b").mkdir()
    monkeypatch.setattr(nodes, "cgroup_hierarchies", lambda: [tmp_path])
    real = os.scandir

    def vanishing(path: Any = ".") -> Any:
        if str(path).endswith("pod-b"):  # removed between its listing and its walk
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", vanishing)
    assert nodes.cgroup_pids("n1") == {123, 456}
