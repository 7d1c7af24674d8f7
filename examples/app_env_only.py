"""A small app on the CDE core with no telemetry code at all.

Run it plain, then with telemetry on — nothing in this file changes:

    python examples/app_env_only.py
    CDE_OTEL_ENABLED=true python examples/app_env_only.py
    CDE_OTEL_ENABLED=true OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 python examples/app_env_only.py
"""

from __future__ import annotations

import sys
import tempfile

from cde_otel.core import PHASES, FileSystemProjectRepository
from cde_otel.errors import CDEError


def main(project_dir: str) -> None:
    repo = FileSystemProjectRepository()
    project = repo.get_or_create(project_dir, name="example")
    if project.status.value != "active":
        project.activate()
    feature = project.start_feature("Add a health endpoint")
    for phase in PHASES[1:]:
        feature.advance_phase(phase, {"notes": f"{phase} finished"})
        repo.save(project)
    feature.complete()
    repo.save(project)
    try:
        feature.fail("too late")
    except CDEError as error:
        sys.stdout.write(f"refused as expected: {error.code}\n")
    sys.stdout.write(f"feature {feature.id} is {feature.status.value}\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="cde-example-"))
