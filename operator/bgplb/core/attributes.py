"""What a VIP's UPDATE carries besides its next hop: communities, large communities,
AS-path prepending and MED; and the one rule for combining them (a pool's with a
Service's, Services sharing a VIP)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from bgplb.api.communities import (
    GRACEFUL_SHUTDOWN,
    CommunityError,
    format_community,
    format_large_community,
    parse_community,
    parse_large_community,
    parse_list,
)
from bgplb.api.contract import COMMUNITIES_ANNOTATION, LARGE_COMMUNITIES_ANNOTATION

T = TypeVar("T")


@dataclass(frozen=True, slots=True, order=True)
class Attributes:
    """A path's attributes besides origin and next hop. Sorted and deduplicated, so
    equal attributes compare equal (the speaker re-sends a path only when they change)."""

    communities: tuple[int, ...] = ()
    large_communities: tuple[tuple[int, int, int], ...] = ()
    as_path_prepend: int = 0
    """How many extra times the speaker's own ASN precedes the path."""
    med: int | None = None

    @classmethod
    def of(
        cls,
        communities: Iterable[int] = (),
        large_communities: Iterable[tuple[int, int, int]] = (),
        as_path_prepend: int = 0,
        med: int | None = None,
    ) -> Attributes:
        return cls(
            tuple(sorted(set(communities))),
            tuple(sorted(set(large_communities))),
            as_path_prepend,
            med,
        )

    @classmethod
    def parse(
        cls,
        communities: Iterable[str] = (),
        large_communities: Iterable[str] = (),
        as_path_prepend: int = 0,
        med: int | None = None,
    ) -> Attributes:
        return cls.of(
            (parse_community(c) for c in communities),
            (parse_large_community(c) for c in large_communities),
            as_path_prepend,
            med,
        )

    def with_(self, other: Attributes) -> Attributes:
        """Both together: what a VIP carries when a pool's and a Service's attributes
        apply, or several Services share it. Communities add up; the longer prepend
        and the higher (worse) MED win, so sharing never makes a path more preferred
        than one of its Services asked for."""
        if other in (self, NONE):
            return self  # Services sharing a VIP mostly carry the same, or nothing
        meds = [m for m in (self.med, other.med) if m is not None]
        return Attributes.of(
            self.communities + other.communities,
            self.large_communities + other.large_communities,
            max(self.as_path_prepend, other.as_path_prepend),
            max(meds) if meds else None,
        )

    def community_texts(self) -> list[str]:
        return [format_community(c) for c in self.communities]

    def large_community_texts(self) -> list[str]:
        return [format_large_community(c) for c in self.large_communities]


NONE = Attributes()
DRAIN_MED = 4_294_967_294
"""The worst MED a router still uses (some treat 4294967295 as unreachable)."""
DRAINING = Attributes.of([GRACEFUL_SHUTDOWN], med=DRAIN_MED)
"""Added to a path whose next hop is leaving gracefully (RFC 8326): routers that
honour GRACEFUL_SHUTDOWN lower its preference, and the worst MED does the same on
those that do not (paths from one AS compare MEDs), so new flows go elsewhere while
the path stays up as a fallback."""


def _each(texts: Iterable[str], parse: Callable[[str], T]) -> tuple[list[T], list[str]]:
    """Every text parsed, and why each that does not parse does not."""
    values: list[T] = []
    errors: list[str] = []
    for text in texts:
        try:
            values.append(parse(text))
        except CommunityError as e:
            errors.append(str(e))
    return values, errors


def _annotation(annotations: Mapping[str, Any], name: str) -> tuple[list[str], list[str]]:
    """The annotation's entries, and an error if it is not a string."""
    value = annotations.get(name)
    if value is None:
        return [], []
    if not isinstance(value, str):
        return [], ["not a string"]
    return parse_list(value), []


def from_annotations(annotations: Mapping[str, Any]) -> tuple[Attributes, list[tuple[str, str]]]:
    """A Service's own communities, and (field, reason) for each entry that is not
    one. The webhook refuses those; the controller advertises without them and says
    why in an Event, so a bad annotation never withdraws a working VIP."""
    texts, bad = _annotation(annotations, COMMUNITIES_ANNOTATION)
    communities, wrong = _each(texts, parse_community)
    large_texts, bad_large = _annotation(annotations, LARGE_COMMUNITIES_ANNOTATION)
    large, wrong_large = _each(large_texts, parse_large_community)
    errors = [(f"metadata.annotations[{COMMUNITIES_ANNOTATION}]", w) for w in bad + wrong]
    errors += [
        (f"metadata.annotations[{LARGE_COMMUNITIES_ANNOTATION}]", w)
        for w in bad_large + wrong_large
    ]
    return Attributes.of(communities, large), errors


def of_route(
    communities: Iterable[str] | None,
    large_communities: Iterable[str] | None,
    as_path_prepend: int | None,
    med: int | None,
) -> Attributes:
    """A BGPAdvertisedRoute's attributes. The CRD refuses what does not parse; an
    entry that slips past it anyway is left out rather than the route."""
    if not (communities or large_communities or as_path_prepend or med is not None):
        return NONE  # most routes: nothing to parse
    good, _ = _each(communities or (), parse_community)
    large, _ = _each(large_communities or (), parse_large_community)
    return Attributes.of(good, large, as_path_prepend or 0, med)
