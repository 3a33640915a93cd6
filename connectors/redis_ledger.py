"""Idempotency ledger in Redis: side-effecting tool calls survive process restarts.

A key is written once (``SET NX`` with a TTL); a replay after recovery finds it and gets
the recorded output back instead of acting twice.
"""

from __future__ import annotations

import json

import redis


class RedisLedger:
    def __init__(self, url: str, ttl_s: int = 7 * 86400, prefix: str = "bsp:v1:idem:") -> None:
        self._r = redis.Redis.from_url(url)
        self._ttl = ttl_s
        self._prefix = prefix

    def get(self, key: str) -> dict | None:
        raw = self._r.get(self._prefix + key)
        return None if raw is None else json.loads(raw)  # type: ignore[arg-type]

    def put(self, key: str, output: dict) -> None:
        self._r.set(self._prefix + key, json.dumps(output, separators=(",", ":")), nx=True,
                    ex=self._ttl)
