"""BGP communities as users write them (RFC 1997 standard, RFC 8092 large): one
parser for the pools' fields, the Service annotations, the webhook and convert."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

WELL_KNOWN = {
    "graceful-shutdown": (0xFFFF << 16) | 0x0000,  # RFC 8326
    "blackhole": (0xFFFF << 16) | 0x029A,  # RFC 7999
    "no-export": (0xFFFF << 16) | 0xFF01,  # RFC 1997
    "no-advertise": (0xFFFF << 16) | 0xFF02,
    "no-export-subconfed": (0xFFFF << 16) | 0xFF03,
    "no-peer": (0xFFFF << 16) | 0xFF04,  # RFC 3765
}
"""Names accepted for well-known communities (FRR's and BIRD's spelling)."""
COMMUNITY_PATTERN = r"^(([0-9]{1,5}):([0-9]{1,5})|" + "|".join(WELL_KNOWN) + ")$"
LARGE_COMMUNITY_PATTERN = r"^[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$"
GRACEFUL_SHUTDOWN = WELL_KNOWN["graceful-shutdown"]
U16 = 0xFFFF
U32 = 0xFFFF_FFFF


class CommunityError(ValueError):
    """A community that cannot be sent, with the reason."""


def parse_community(text: str) -> int:
    """'65000:100' or a well-known name → its 32-bit value."""
    text = text.strip()
    if text in WELL_KNOWN:
        return WELL_KNOWN[text]
    match = re.fullmatch(r"([0-9]{1,5}):([0-9]{1,5})", text)
    if match is None:
        raise CommunityError(
            f"{text!r} is not a community 'ASN:value' or one of {', '.join(WELL_KNOWN)}"
        )
    high, low = int(match[1]), int(match[2])
    if high > U16 or low > U16:
        raise CommunityError(f"{text!r}: both halves of a community are at most 65535")
    return (high << 16) | low


def parse_large_community(text: str) -> tuple[int, int, int]:
    """'65000:1:2' (RFC 8092) → its three 32-bit parts."""
    parts = text.strip().split(":")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise CommunityError(f"{text!r} is not a large community 'ASN:value:value'")
    values = (int(parts[0]), int(parts[1]), int(parts[2]))
    if any(v > U32 for v in values):
        raise CommunityError(f"{text!r}: each part of a large community is at most 4294967295")
    return values


def format_community(value: int) -> str:
    return f"{value >> 16}:{value & U16}"


def format_large_community(value: tuple[int, int, int]) -> str:
    return ":".join(str(v) for v in value)


def parse_list(text: str) -> list[str]:
    """An annotation's comma-separated list (blanks skipped)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def _check_community(text: str) -> str:
    parse_community(text)
    return text


def _check_large_community(text: str) -> str:
    parse_large_community(text)
    return text


Community = Annotated[
    str,
    AfterValidator(_check_community),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 24,
            "pattern": COMMUNITY_PATTERN,
            "x-kubernetes-validations": [
                {
                    "rule": "!self.matches('^[0-9]') || self.split(':').all(p, int(p) <= 65535)",
                    "message": "both halves of a community are at most 65535",
                }
            ],
        }
    ),
]
LargeCommunity = Annotated[
    str,
    AfterValidator(_check_large_community),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 32,
            "pattern": LARGE_COMMUNITY_PATTERN,
            "x-kubernetes-validations": [
                {
                    "rule": "self.split(':').all(p, int(p) <= 4294967295)",
                    "message": "each part of a large community is at most 4294967295",
                }
            ],
        }
    ),
]
