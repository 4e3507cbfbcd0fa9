"""Small builders shared by the unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bgplb_lab.manifests import gateway, load_balancer, peer

__all__ = ["EXAMPLES", "ROOT", "gateway", "load_balancer", "manifests", "peer"]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def manifests(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]
