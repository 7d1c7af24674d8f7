"""Instrumenting your own code by setting: CDE_OTEL_TARGETS=module:Class.method (sync or async).

    CDE_OTEL_ENABLED=true CDE_OTEL_TARGETS=examples.review_bot:ReviewBot.review \
        python -m examples.custom_target
"""

from __future__ import annotations

import asyncio
import sys
import tempfile

from cde_otel.core import FileSystemProjectRepository
from examples.review_bot import ReviewBot


def main() -> str:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(tempfile.mkdtemp(prefix="cde-example-"))
    project.activate()
    feature = project.start_feature("Have the bot review me")
    verdict = asyncio.run(ReviewBot().review(feature.id))
    sys.stdout.write(verdict + "\n")
    return verdict


if __name__ == "__main__":
    main()
