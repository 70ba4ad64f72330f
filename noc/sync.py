"""Sync now: copy the suppression entries a region lacks from another, every list.

Idempotent (ZADD NX keeps the original score), bounded like a poll, and audited
like every operator action. Shared by the `y` key, the palette and `noc sync`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from noc_collectors.suppression import sync_missing

from noc.audit import JsonlLog
from noc.clock import Clock
from noc.config import NocConfig
from noc.model import SyncResult


class SyncError(ValueError):
    """The request cannot run: a region is unknown or has no store."""


def store_url(config: NocConfig, region_id: str) -> str:
    region = config.region(region_id)
    if region is None:
        known = ", ".join(r.id for r in config.regions)
        raise SyncError(f"no region {region_id!r} (regions: {known})")
    if not region.redis_url:
        raise SyncError(f"region {region_id} has no redis_url: nothing to sync")
    return region.redis_url


async def sync_now(
    config: NocConfig,
    source: str,
    target: str,
    clock: Clock,
    lists: Sequence[str] | None = None,
) -> list[SyncResult]:
    if source == target:
        raise SyncError("source and target are the same region")
    source_url, target_url = store_url(config, source), store_url(config, target)
    settings = config.suppression
    return list(
        await asyncio.gather(
            *(
                sync_missing(
                    source_url,
                    target_url,
                    name,
                    key_pattern=settings.key_pattern,
                    lookback_seconds=settings.lookback_seconds,
                    max_examined=settings.max_examined,
                    clock=clock,
                )
                for name in (lists or settings.lists)
            )
        )
    )


def sync_ok(results: Sequence[SyncResult]) -> bool:
    return all(not r.errors and not r.truncated for r in results)


def sync_summary(source: str, target: str, results: Sequence[SyncResult]) -> str:
    copied = sum(r.copied for r in results)
    verdict = "done" if sync_ok(results) else "INCOMPLETE, run it again"
    per_list = ", ".join(f"{r.list} {r.copied}/{r.missing}" for r in results)
    return f"sync {source}→{target} {verdict}: {copied} entries copied ({per_list})"


async def audit_sync(
    audit: JsonlLog,
    operator: Mapping[str, str],
    source: str,
    target: str,
    results: Sequence[SyncResult],
) -> None:
    lists: dict[str, Any] = {
        r.list: {"examined": r.examined, "missing": r.missing, "copied": r.copied,
                 "truncated": r.truncated, "errors": list(r.errors)}
        for r in results
    }  # fmt: skip
    await audit.aappend(
        "sync",
        action="sync",
        **{"from": source, "to": target},
        ok=sync_ok(results),
        lists=lists,
        summary=sync_summary(source, target, results),
        **operator,
    )
