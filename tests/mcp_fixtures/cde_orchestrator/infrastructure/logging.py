"""Logging set-up as the upstream server does it: root handlers replaced at start-up."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True
    )


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)
