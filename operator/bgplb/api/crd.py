"""CustomResourceDefinitions generated from the pydantic models (`bgplb gen-crds`).

Kubernetes wants *structural* OpenAPI v3 schemas: every node typed, no $ref, no
nullable unions, no `additionalProperties: false`, no `uniqueItems`. Pydantic emits
JSON Schema 2020-12, so this module rewrites one into the other.
"""

from __future__ import annotations

from typing import Any

from bgplb.api.common import GROUP, VERSION, Resource
from bgplb.api.contract import SINGLETON_NAME

JSON = dict[str, Any]

# Keys Kubernetes rejects or that carry nothing for a cluster.
_DROP = {"title", "additionalProperties", "uniqueItems", "$defs"}

# Rules on the whole object: CEL at the root may read metadata.name.
SINGLETON_RULE = {
    "rule": f"self.metadata.name == '{SINGLETON_NAME}'",
    # fieldPath cannot point into metadata, so the message names the field.
    "message": f"metadata.name must be '{SINGLETON_NAME}': there is one per cluster",
}


def _resolve(node: Any, defs: JSON) -> Any:
    if isinstance(node, list):
        return [_resolve(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    any_of = node.get("anyOf")
    if any_of is not None:
        # Optional[X] is anyOf[X, null]: in Kubernetes an optional field is simply
        # one that is not required, so keep X and drop the null default.
        kept = [b for b in any_of if b.get("type") != "null"]
        if len(kept) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {any_of}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if rest.get("default", 0) is None:
            del rest["default"]
        return _resolve({**kept[0], **rest}, defs)
    out: JSON = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: _resolve(sub, defs) for name, sub in value.items()}
        elif key == "default" and value in ({}, []):
            # Empty defaults only add noise to every stored object.
            continue
        else:
            out[key] = _resolve(value, defs)
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" in node:
        out["additionalProperties"] = _resolve(node["additionalProperties"], defs)
    return out


API_VERSION_DOC = (
    "The versioned schema of this representation of an object (Kubernetes API conventions)."
)
KIND_DOC = "The REST resource this object represents (Kubernetes API conventions)."


def structural_schema(model: type[Any]) -> JSON:
    """The structural OpenAPI v3 schema of one pydantic model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    resolved: JSON = _resolve(raw, defs)
    return resolved


def crd(resource: type[Resource]) -> JSON:
    """The CustomResourceDefinition of one kind."""
    kind = resource.KIND
    fields = resource.model_fields
    spec = structural_schema(fields["spec"].annotation)  # type: ignore[arg-type]
    properties: JSON = {
        "apiVersion": {"type": "string", "description": API_VERSION_DOC},
        "kind": {"type": "string", "description": KIND_DOC},
        # The API server refuses anything but a type here; `kubectl explain` shows
        # ObjectMeta's own documentation.
        "metadata": {"type": "object"},
        "spec": {"description": f"What the {kind.kind} asks for.", **spec},
    }
    root: JSON = {"type": "object", "required": ["spec"], "properties": properties}
    if kind.has_status:
        status = structural_schema(fields["status"].annotation)  # type: ignore[arg-type]
        properties["status"] = {"description": f"What bgplb observed of the {kind.kind}.", **status}
    if kind.singleton:
        root["x-kubernetes-validations"] = [SINGLETON_RULE]
    if doc := (resource.__doc__ or "").strip():
        root["description"] = doc
    version: JSON = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": root},
        "additionalPrinterColumns": [
            {
                k: v
                for k, v in {
                    "name": c.name,
                    "type": c.type,
                    "jsonPath": c.json_path,
                    "description": c.description,
                    "priority": c.priority,
                }.items()
                if v not in ("", 0)
            }
            for c in kind.columns
        ],
    }
    if kind.has_status:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": list(kind.short_names),
                "categories": list(kind.categories),
            },
            "versions": [version],
        },
    }


def render_all() -> dict[str, str]:
    """File name → YAML text of every CRD, as committed under crds/."""
    import yaml

    from bgplb.api import KINDS

    header = "# Generated by `bgplb gen-crds` from operator/bgplb/api; do not edit.\n"
    return {
        f"{GROUP}_{k.KIND.plural}.yaml": header + yaml.safe_dump(crd(k), sort_keys=False, width=100)
        for k in KINDS
    }
