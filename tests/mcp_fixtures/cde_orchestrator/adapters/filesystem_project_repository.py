"""Async persistence of a project in ``<path>/.cde/state.json``, as the upstream adapter does."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

from cde_orchestrator.domain.entities import Feature, FeatureStatus, Project, ProjectId, ProjectStatus

logger = logging.getLogger(__name__)


class FileSystemProjectRepository:
    async def get_by_path(self, path: str) -> Project | None:
        state = Path(path) / ".cde" / "state.json"
        if not state.exists():
            return None
        data = json.loads(state.read_text())
        features = [
            Feature(
                f["id"],
                ProjectId(f["project_id"]["value"]),
                f["prompt"],
                f["workflow_type"],
                FeatureStatus(f["status"]),
                f["current_phase"],
                f["artifacts"],
            )
            for f in data["features"]
        ]
        return Project(
            ProjectId(data["id"]["value"]), data["name"], data["path"], ProjectStatus(data["status"]), features
        )

    async def get_or_create(self, path: str, name: str | None = None) -> Project:
        existing = await self.get_by_path(path)
        if existing is not None:
            return existing
        logger.info("Creating new project at %s", path)
        return Project.create(name or Path(path).name, path)

    async def save(self, project: Project) -> None:
        state_dir = Path(project.path) / ".cde"
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp = state_dir / "state.json.tmp"
        tmp.write_text(json.dumps(asdict(project), default=str))
        os.replace(tmp, state_dir / "state.json")
