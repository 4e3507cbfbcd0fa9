from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bgplb.cli import main
from tests.unit.helpers import EXAMPLES, ROOT, peer


def test_gen_crds_writes_the_committed_files(tmp_path: Path) -> None:
    assert main(["gen-crds", "--output", str(tmp_path)]) == 0
    generated = {p.name: p.read_text() for p in tmp_path.glob("*.yaml")}
    for committed in (ROOT / "crds", ROOT / "charts" / "bgplb" / "crds"):
        assert generated == {p.name: p.read_text() for p in committed.glob("*.yaml")}, committed


def test_validate_examples_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", *map(str, sorted(EXAMPLES.glob("3-*.yaml")))]) == 0
    assert "3 valid, 0 invalid" in capsys.readouterr().out


def test_validate_reports_field_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump_all([peer(peerASN=65001), peer("ok", peerIP="192.0.2.253")]))
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr()
    assert (
        "BGPPeer/tor1: spec.peerASN: equals spec.localASN (65001): only eBGP is supported"
        in out.err
    )
    assert "1 valid, 1 invalid" in out.out
