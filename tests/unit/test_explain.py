"""`kubectl explain` has something to say about every field of every kind (issue 14,
item 9): each property of each generated CRD carries a description."""

from __future__ import annotations

from typing import Any

import pytest

from bgplb.api import KINDS
from bgplb.api.crd import crd


def undescribed(path: str, schema: dict[str, Any]) -> list[str]:
    out = []
    for name, sub in schema.get("properties", {}).items():
        here = f"{path}.{name}"
        if here == ".metadata":
            continue  # the API server allows no description there (ObjectMeta has its own)
        if not sub.get("description", "").strip():
            out.append(here)
        out += undescribed(here, sub)
    if "items" in schema:
        out += undescribed(f"{path}[]", schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        out += undescribed(f"{path}{{}}", schema["additionalProperties"])
    return out


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.KIND.kind)
def test_every_field_is_described(kind: Any) -> None:
    (version,) = crd(kind)["spec"]["versions"]
    root = version["schema"]["openAPIV3Schema"]
    assert root.get("description")
    assert undescribed("", root) == []
