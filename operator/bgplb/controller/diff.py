"""Desired objects against existing ones → the writes to make. Pure.

Specs are compared as parsed models, so defaults the API server filled in do not
look like differences: an unchanged plan makes no writes at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from bgplb.api.common import read

JSON = dict[str, Any]


@dataclass
class Writes:
    create: list[JSON] = field(default_factory=list)
    update: list[JSON] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.create) + len(self.update) + len(self.delete)


def _same_spec(model: type[BaseModel], a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    try:
        return read(model, a) == read(model, b)
    except ValidationError:
        return False


def diff_objects(
    desired: Iterable[JSON], existing: Mapping[str, Mapping[str, Any]], spec_model: type[BaseModel]
) -> Writes:
    writes = Writes()
    wanted = {obj["metadata"]["name"]: obj for obj in desired}
    for name, obj in wanted.items():
        current = existing.get(name)
        if current is None:
            writes.create.append(obj)
            continue
        labels = current["metadata"].get("labels") or {}
        want_labels = obj["metadata"].get("labels") or {}
        if not _same_spec(spec_model, current.get("spec", {}), obj["spec"]) or any(
            labels.get(k) != v for k, v in want_labels.items()
        ):
            writes.update.append(obj)
    writes.delete = sorted(set(existing) - set(wanted))
    return writes


def status_differs(
    model: type[BaseModel], current: Mapping[str, Any] | None, wanted: BaseModel
) -> bool:
    """Whether writing `wanted` would change the stored status (conditions' times aside)."""
    if not current:
        return True
    try:
        parsed = read(model, current)
    except ValidationError:
        return True
    ignore = {"conditions"}
    return bool(
        parsed.model_dump(exclude=ignore) != wanted.model_dump(exclude=ignore)
        or _conditions(parsed) != _conditions(wanted)
    )


def _conditions(status: BaseModel) -> list[tuple[str, str, str, str]]:
    return sorted(
        (c.type, c.status, c.reason, c.message) for c in getattr(status, "conditions", [])
    )
