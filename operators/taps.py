"""Taps: steps that look at every batch of a stream and pass nothing on (a branch that ends
there), for counting (metrics) without touching the data path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream


def tap(step_id: str, up: Stream, fn: Callable[[Any], None], chunks: bool = False) -> None:
    """Call ``fn`` on each Bytewax batch of ``up`` (``chunks``: on each chunk of a chunk
    stream, see ``operators.chunks``)."""
    def look(batch: list) -> list:
        if chunks:
            for c in batch:
                fn(c)
        else:
            fn(batch)
        return []

    op.flat_map_batch(step_id, up, look)
