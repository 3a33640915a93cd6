"""Streams of *chunks*: lists of items that travel through Bytewax as one item.

Bytewax spends a few microseconds on every item at every step (a Python call per item for
``map``/``branch``, a pickle per item when it crosses workers). The feature and decision
steps exchange far more items than there are events (affinity hints, co-visitation pairs,
store rows, decision records), so inside the flow they pass whole lists: one chunk per
Bytewax batch and step, a handful of Python calls per batch instead of one per item.
Sources and sinks stay per item: the validate step chunks what the source reads, and
``flatten`` turns chunks back into items before the sinks.

A chunk is a plain ``list``; an empty chunk is never emitted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream


def flatten(step_id: str, up: Stream[list]) -> Stream:
    """Chunk stream → item stream."""
    return op.flat_map_batch(step_id, up, lambda chunks: [x for c in chunks for x in c])


def chunk_flat_map(step_id: str, up: Stream[list], fn: Callable[[Any], list]) -> Stream[list]:
    """``fn(item) -> [items]`` applied inside chunks; one output chunk per input batch."""
    def run(chunks: list) -> list:
        out = [y for c in chunks for x in c for y in fn(x)]
        return [out] if out else []

    return op.flat_map_batch(step_id, up, run)


def chunk_map(step_id: str, up: Stream[list], fn: Callable[[Any], Any]) -> Stream[list]:
    """``fn(item) -> item`` applied inside chunks."""
    def run(chunks: list) -> list:
        out = [fn(x) for c in chunks for x in c]
        return [out] if out else []

    return op.flat_map_batch(step_id, up, run)


def split_by_type(step_id: str, up: Stream[list], kinds: tuple[type, ...]) -> list[Stream[list]]:
    """One chunk stream per exact item type in ``kinds`` (in that order), the rest last.

    Order within each output chunk is the order of the input.
    """
    n = len(kinds)
    index = {t: i for i, t in enumerate(kinds)}

    def tag(chunks: list) -> list:
        parts: list[list] = [[] for _ in range(n + 1)]
        for c in chunks:
            for x in c:
                parts[index.get(type(x), n)].append(x)
        return [(i, p) for i, p in enumerate(parts) if p]

    tagged = op.flat_map_batch(f"{step_id}_tag", up, tag)
    streams = []
    rest = tagged
    for i in range(n):
        b = op.branch(f"{step_id}_{i}", rest, lambda tp, i=i: tp[0] == i)
        streams.append(op.map(f"{step_id}_{i}_untag", b.trues, _second))
        rest = b.falses
    streams.append(op.map(f"{step_id}_rest_untag", rest, _second))
    return streams


def _second(tp: tuple) -> Any:
    return tp[1]
