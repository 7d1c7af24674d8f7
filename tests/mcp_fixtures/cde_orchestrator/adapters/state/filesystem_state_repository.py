"""The application state as one JSON dict, as the upstream ``FileSystemStateRepository`` keeps it:
``{"features": {feature_id: {"status": ..., "current_phase": ..., ...}}, ...}``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class FileSystemStateRepository:
    def __init__(self, state_file_path: str | Path) -> None:
        self.state_file_path = Path(state_file_path)
        self.state_file_path.parent.mkdir(parents=True, exist_ok=True)

    def load_state(self) -> dict[str, Any]:
        if not self.state_file_path.exists():
            return {}
        state: dict[str, Any] = json.loads(self.state_file_path.read_text())
        return state

    def save_state(self, state: dict[str, Any]) -> None:
        self.state_file_path.write_text(json.dumps(state, indent=4))
