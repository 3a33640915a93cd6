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


def split_by_type(step_id: str, up: Stream[list], kinds: tuple[type, ...],
                  keyed: bool = False) -> list[Stream[list]]:
    """One chunk stream per exact item type in ``kinds`` (in that order), the rest last.

    Order within each output chunk is the order of the input. With ``keyed``, ``up`` carries
    ``(key, chunk)`` pairs (``operators.sharded_fold.sharded_fold_keyed``) and the outputs
    are plain chunks.

    Each output is one step that picks its items from every input chunk: n + 1 steps for n
    kinds, where a tag-and-branch split needs 2n + 2 (Bytewax's cost is per step and batch,
    and live traffic comes in many small batches).
    """
    def pick(kind: type | None, others: frozenset) -> Callable[[list], list]:
        if kind is None:
            def rest(chunks: list) -> list:
                cs = [c for _, c in chunks] if keyed else chunks
                out = [x for c in cs for x in c if type(x) not in others]
                return [out] if out else []
            return rest

        def only(chunks: list) -> list:
            cs = [c for _, c in chunks] if keyed else chunks
            out = [x for c in cs for x in c if type(x) is kind]
            return [out] if out else []
        return only

    everything = frozenset(kinds)
    streams = [op.flat_map_batch(f"{step_id}_{i}", up, pick(kind, everything))
               for i, kind in enumerate(kinds)]
    streams.append(op.flat_map_batch(f"{step_id}_rest", up, pick(None, everything)))
    return streams
