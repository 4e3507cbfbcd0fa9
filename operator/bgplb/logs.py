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
    # kopf reports every handled watch event at INFO; the index sees thousands.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
