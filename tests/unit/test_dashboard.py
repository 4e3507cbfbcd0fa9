"""Every metric the Grafana dashboard plots is one the agent or controller exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import bgplb.agent.desired
import bgplb.agent.metrics
import bgplb.controller.metrics
import bgplb.core.floating
import bgplb.core.plan

DASHBOARD = Path(__file__).parents[2] / "charts/bgplb/dashboards/bgplb.json"
MODULES = (bgplb.agent.desired, bgplb.agent.metrics, bgplb.controller.metrics)
MODULES += (bgplb.core.floating, bgplb.core.plan)


def test_every_plotted_metric_is_exported() -> None:
    assert MODULES  # imported for the metrics they register
    exported = set(REGISTRY._names_to_collectors)  # every sample name, _bucket included
    panels = json.loads(DASHBOARD.read_text())["panels"]
    plotted = {
        name
        for panel in panels
        for target in panel.get("targets", [])
        for name in re.findall(r"\bbgplb_[a-z_]+", target["expr"])
    }
    assert "bgplb_agent_wakeup_delay_seconds_bucket" in plotted
    assert plotted - exported == set()
