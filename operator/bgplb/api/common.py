"""Types shared by every kind of the networking.bgplb.io/v1 API."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

GROUP = "networking.bgplb.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"

# Wire names follow the seed (floatingIPs, localASN, peerIP): plain camelCase
# would spell them floatingIps / localAsn, which users' manifests do not use.
_ACRONYMS = {"ip": "IP", "ips": "IPs", "asn": "ASN", "ttl": "TTL", "vip": "VIP", "vips": "VIPs"}


def wire_name(field_name: str) -> str:
    """Python snake_case attribute → the API's camelCase field name."""
    first, *rest = field_name.split("_")
    return first + "".join(_ACRONYMS.get(part, part.capitalize()) for part in rest)


def _ipv4(value: Any) -> Any:
    if isinstance(value, str) and ":" in value:
        raise ValueError("IPv6 is not supported yet")
    if isinstance(value, ipaddress.IPv6Address | ipaddress.IPv6Network):
        raise ValueError("IPv6 is not supported yet")
    return value


def _ipv4_text(value: Any) -> Any:
    value = _ipv4(value)
    if isinstance(value, str):
        try:
            return ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IPv4 address") from None
    return value


IPv4 = Annotated[
    ipaddress.IPv4Address,
    BeforeValidator(_ipv4_text),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "format": "ipv4"}),
]
"""An IPv4 address on the wire; IPv6 is rejected with a clear reason."""

ASN = Annotated[
    int,
    Field(ge=1, le=4_294_967_295, description="Autonomous system number (1-4294967295)."),
]

Timestamp = Annotated[
    dt.datetime,
    PlainSerializer(lambda t: t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""RFC 3339 in UTC with second precision, as Kubernetes writes times."""


class ApiModel(BaseModel):
    """Base of all API payloads: seed-style field names, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=wire_name,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        # A field's docstring is its description in the CRD (`kubectl explain`).
        use_attribute_docstrings=True,
    )


class ObjectMeta(BaseModel):
    """The part of Kubernetes object metadata the operator reads."""

    model_config = ConfigDict(
        alias_generator=wire_name, populate_by_name=True, extra="ignore", frozen=True
    )

    name: str = ""
    namespace: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int = 0
    resource_version: str = ""
    uid: str = ""


class Condition(ApiModel):
    """A condition following the Kubernetes API conventions."""

    type: str = Field(max_length=316, pattern=r"^([a-z0-9.-]+/)?[A-Za-z0-9_.-]+$")
    """What the condition is about, in CamelCase (Ready, Established, ...)."""
    status: Literal["True", "False", "Unknown"]
    """Whether it holds."""
    reason: str = Field(max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    """Why, in one CamelCase word, for programs."""
    message: str = Field("", max_length=32768)
    """Why, for people."""
    last_transition_time: Timestamp
    """When the status last changed."""
    observed_generation: int = Field(0, ge=0)
    """The metadata.generation the condition was set for (older: stale)."""


Conditions = Annotated[
    list[Condition],
    Field(
        default_factory=list,
        description="The latest observations of the object's state, one per type.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    ),
]


class PrinterColumn(BaseModel):
    """One additionalPrinterColumns entry of a CRD."""

    model_config = ConfigDict(frozen=True)

    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str = ""
    priority: int = 0


class Kind(BaseModel):
    """How a resource is named and shown: everything of a CRD but its schema."""

    model_config = ConfigDict(frozen=True)

    kind: str
    plural: str
    short_names: tuple[str, ...]
    columns: tuple[PrinterColumn, ...]
    has_status: bool = True
    singleton: bool = False
    categories: tuple[str, ...] = ("bgplb",)


class Resource(ApiModel):
    """A whole object of one of our kinds: apiVersion, kind, metadata, spec, status."""

    KIND: ClassVar[Kind]

    api_version: Literal["networking.bgplb.io/v1"] = Field(
        "networking.bgplb.io/v1", alias="apiVersion"
    )
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)


M = TypeVar("M", bound=BaseModel)


def read(cls: type[M], obj: Any) -> M:
    """Parse what the API server stored. Fields this version does not know (written
    by a newer one) are ignored: a reader that refused them would drop the whole
    object. `bgplb validate` and the webhook still refuse them, as typos."""
    return cls.model_validate(obj, extra="ignore")
