"""Coded domain errors, as the upstream domain raises them."""

from __future__ import annotations

from typing import Any


class CDEError(Exception):
    def __init__(self, message: str, code: str, context: dict[str, Any] | None = None, recoverable: bool = True):
        super().__init__(message)
        self.message = message
        self.code = code
        self.context = context or {}
        self.recoverable = recoverable


class FeatureNotFoundError(CDEError):
    def __init__(self, feature_id: str, project_path: str) -> None:
        super().__init__(
            f"feature {feature_id} not found in project {project_path}",
            "E104",
            {"feature_id": feature_id, "project_path": project_path},
        )


class InvalidPhaseError(CDEError):
    def __init__(self, current: str, requested: str) -> None:
        super().__init__(
            f"cannot go from {current} to {requested}", "E102", {"current": current, "requested": requested}
        )
