"""Structured JSON logs, one object per line, for every bgplb process."""

from __future__ import annotations

import logging
import os
import sys

from pythonjsonlogger.json import JsonFormatter


def setup_logging(level: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={
                "asctime": "ts",
                "levelname": "level",
                "name": "logger",
                "message": "msg",
            },
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("BGPLB_LOG_LEVEL", "INFO"))
    # Said at INFO on every turn, not on a change: kopf for each watch event (the index
    # sees thousands), the Kubernetes client's leader election at each renewal or
    # failed try (every 2 s; the controller logs becoming leader itself), aiohttp for
    # each liveness probe.
    for chatty in ("kopf.objects", "leaderelection", "aiohttp.access"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
