"""Redis online store: one hash per entity key, pipelined, TTL per write, newest wins.

Keys are ``bsp:v1:<entity>:<key>``; the hash field ``_ts`` holds the event time of the
stored value, and a Lua script refuses writes older than it (atomic on the server), so a
replay after recovery never rolls a value back.
"""

from __future__ import annotations

import redis

from features.store import Fields, StoreOp, StorePurge, StoreWrite

KEY_PREFIX = "bsp:v1"
_WRITE_IF_NEWER = """
local cur = redis.call('HGET', KEYS[1], '_ts')
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], '_ts', ARGV[1], unpack(ARGV, 3))
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
"""


def redis_key(entity: str, key: str) -> str:
    return f"{KEY_PREFIX}:{entity}:{key}"


def _decode(h: dict[bytes, bytes]) -> Fields:
    out: Fields = {}
    for k, v in h.items():
        name = k.decode()
        if name == "_ts":
            continue
        s = v.decode()
        try:
            out[name] = int(s)
        except ValueError:
            try:
                out[name] = float(s)
            except ValueError:
                out[name] = s
    return out


class RedisStore:
    def __init__(self, url: str) -> None:
        self._r = redis.Redis.from_url(url)
        self._write = self._r.register_script(_WRITE_IF_NEWER)

    @property
    def client(self) -> redis.Redis:
        return self._r

    def apply(self, ops: list[StoreOp]) -> None:
        if not ops:
            return
        pipe = self._r.pipeline(transaction=False)
        for op in ops:
            if isinstance(op, StorePurge):
                pipe.delete(redis_key(op.entity, op.key))
                continue
            assert isinstance(op, StoreWrite)
            args: list[str | int | float] = [op.ts, op.ttl_s]
            for k, v in op.fields.items():
                args.extend((k, v))
            self._write(keys=[redis_key(op.entity, op.key)], args=args, client=pipe)
        pipe.execute()

    def read_many(self, entity: str, keys: list[str]) -> list[Fields | None]:
        pipe = self._r.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(redis_key(entity, key))
        return [_decode(h) if h else None for h in pipe.execute()]

    def close(self) -> None:
        self._r.close()
