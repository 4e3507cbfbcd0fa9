"""MetalLB beside bgplb: the same footing in the lab's drills."""

from __future__ import annotations

from pathlib import Path

import yaml

from bgplb_lab.images import Image
from bgplb_lab.metallb import manifests

UPSTREAM = [
    {
        "kind": kind,
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"name": name, "args": []}]}}},
    }
    for kind, name in (("Deployment", "controller"), ("DaemonSet", "speaker"))
]


def test_metallb_asks_for_what_its_bgplb_counterpart_asks_for(tmp_path: Path) -> None:
    # Upstream asks for nothing: BestEffort, cpu.shares 2, starved behind bgplb's
    # Pods on the lab's shared cores (its controller stalled for 120 s in CI).
    source = tmp_path / "metallb-native.yaml"
    source.write_text(yaml.safe_dump_all(UPSTREAM))
    image = Image("metallb:lab", Path("metallb.tar"))
    out = {o["metadata"]["name"]: o for o in manifests(source, image, image)}
    values = yaml.safe_load(Path("charts/bgplb/values.yaml").read_text())

    def requests(name: str) -> dict[str, str]:
        (container,) = out[name]["spec"]["template"]["spec"]["containers"]
        return dict(container["resources"]["requests"])

    assert requests("controller") == values["controller"]["resources"]["requests"]
    assert requests("speaker") == values["agent"]["resources"]["requests"]
    assert requests("speaker")["cpu"]
