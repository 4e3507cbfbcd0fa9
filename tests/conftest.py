"""Fixtures shared by every test that needs a real Kubernetes API."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bgplb_lab.kube import KubeAPI, remove, temporary


@pytest.fixture(scope="session")
def kube() -> Iterator[KubeAPI]:
    """A real etcd + kube-apiserver, with our CRDs installed."""
    api = temporary()
    try:
        api.start()
        api.kubectl("apply", "--server-side", "-f", "crds/")
        api.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        yield api
    finally:
        if os.environ.get("BGPLB_KEEP_LOGS"):
            api.stop()
        else:
            remove(api)
