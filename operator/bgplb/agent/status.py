"""BGPSession status: built from the speaker's peer state, written only when it says
something new — or, at a slow period, to show the report is alive (LAST REPORT).

A session's status follows its speaker's WatchEvent stream, so a state change is
reported as soon as gobgpd announces it; counters ride along on those writes and on
the slow refresh.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bgplb.agent.speaker.model import PeerStatus
from bgplb.api.bgpsession import BGPSessionSpec, BGPSessionStatus

REFRESH_SECONDS = 60.0
log = logging.getLogger(__name__)


def session_status(
    spec: BGPSessionSpec,
    peer: PeerStatus | None,
    advertised_routes: Iterable[str],
    now: dt.datetime,
    *,
    error: str = "",
    bfd: str | None = None,
) -> BGPSessionStatus:
    established = peer is not None and peer.state == "Established"
    return BGPSessionStatus(
        state=peer.state if peer else "Idle",
        advertised_routes=sorted(advertised_routes) if established else [],
        received_prefixes=peer.received_prefixes if peer else 0,
        advertised_prefixes=peer.advertised_prefixes if peer else 0,
        established_since=peer.established_since if peer else None,
        last_error=error or (peer.last_error if peer else ""),
        last_report_time=now,
        bfd=bfd,
    )


def _content(status: BGPSessionStatus) -> dict[str, Any]:
    return status.model_dump(mode="json", exclude={"last_report_time"})


@dataclass
class Reporter:
    """Decides which statuses to write; remembers what was written."""

    refresh_seconds: float = REFRESH_SECONDS
    written: dict[str, BGPSessionStatus] = field(default_factory=dict)

    def due(self, name: str, status: BGPSessionStatus) -> bool:
        last = self.written.get(name)
        if last is None:
            return True
        before, after = _content(last), _content(status)
        if before != after:
            changed = sorted(k for k in after if before.get(k) != after[k])
            log.debug("status changed", extra={"session": name, "fields": changed})
            return True
        assert status.last_report_time is not None
        assert last.last_report_time is not None
        age = (status.last_report_time - last.last_report_time).total_seconds()
        return age >= self.refresh_seconds

    def mark(self, name: str, status: BGPSessionStatus) -> None:
        self.written[name] = status

    def forget_except(self, names: Iterable[str]) -> None:
        keep = set(names)
        for name in list(self.written):
            if name not in keep:
                del self.written[name]


class StatusWriter(Protocol):
    def write(self, name: str, status: BGPSessionStatus) -> None: ...


@dataclass
class FileStatusWriter:
    """Statuses as one JSON file (file mode, before the controller exists)."""

    path: Path
    statuses: dict[str, Any] = field(default_factory=dict)

    def write(self, name: str, status: BGPSessionStatus) -> None:
        self.statuses[name] = status.model_dump(mode="json", by_alias=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.statuses, indent=2, sort_keys=True))
        tmp.replace(self.path)


@dataclass
class KubeStatusWriter:
    """Patches the status subresource of the node's BGPSession objects."""

    api: Any
    """kubernetes.client.CustomObjectsApi"""
    namespace: str

    def write(self, name: str, status: BGPSessionStatus) -> None:
        from bgplb.api import GROUP, VERSION

        self.api.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            self.namespace,
            "bgpsessions",
            name,
            {"status": status.model_dump(mode="json", by_alias=True)},
            _request_timeout=5,
        )
