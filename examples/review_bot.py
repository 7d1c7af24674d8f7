"""Stands for any class of yours: an async reviewer of features (instrumented by setting only)."""

from __future__ import annotations

import asyncio


class ReviewBot:
    async def review(self, feature_id: str) -> str:
        await asyncio.sleep(0)
        return f"approved {feature_id}"
