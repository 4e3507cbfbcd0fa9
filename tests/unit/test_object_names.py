"""Names and label values the controller writes stay within the API's limits."""

from __future__ import annotations

import re

from bgplb.core.objects import node_label_value, session_object_name

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def test_a_node_name_that_fits_is_its_own_label_value() -> None:
    assert node_label_value("n1") == "n1"
    assert node_label_value("a" * 63) == "a" * 63


def test_a_long_node_name_gets_a_distinct_valid_label_value() -> None:
    long_a = "rack-12." + "a" * 60 + ".example.com"
    long_b = "rack-12." + "a" * 60 + ".example.org"
    value_a, value_b = node_label_value(long_a), node_label_value(long_b)
    assert value_a != value_b
    for value in (value_a, value_b):
        assert len(value) <= 63
        assert LABEL_VALUE.match(value), value
    assert node_label_value(long_a) == value_a  # stable: the agent computes the same


def test_session_names_fit_in_253() -> None:
    name = "p" * 200 + "-" + "n" * 200
    fitted = session_object_name(name)
    assert len(fitted) <= 253
    assert SUBDOMAIN.match(fitted), fitted
    assert session_object_name("tor-a-n1") == "tor-a-n1"


def test_a_status_that_does_not_parse_is_rewritten_not_fatal() -> None:
    from bgplb.api.bgppeer import BGPPeerStatus
    from bgplb.controller.reconcile import _status_of

    bad = {"metadata": {"name": "tor-a"}, "status": {"establishedSessions": "many"}}
    assert _status_of(BGPPeerStatus, bad) == BGPPeerStatus()
    good = {"metadata": {"name": "tor-a"}, "status": {"establishedSessions": 2}}
    assert _status_of(BGPPeerStatus, good).established_sessions == 2
