"""Progress step: a periodic status line per worker (events seen, events/s)."""

from __future__ import annotations

import sys
import time

import bytewax.operators as op
from bytewax.dataflow import Stream


def progress(step_id: str, up: Stream, every_s: float = 5.0, label: str = "events") -> Stream:
    """Pass items through unchanged; every ``every_s`` seconds print a status line."""
    state = {"n": 0, "t0": 0.0, "last": 0.0, "n_last": 0}

    def count(batch: list) -> list:
        now = time.monotonic()
        if not state["t0"]:
            state["t0"] = state["last"] = now
        state["n"] += len(batch)
        if now - state["last"] >= every_s:
            rate = (state["n"] - state["n_last"]) / (now - state["last"])
            print(f"[bespoke] {label}={state['n']} rate={rate:,.0f}/s "
                  f"elapsed={now - state['t0']:.0f}s", file=sys.stderr, flush=True)
            state["last"], state["n_last"] = now, state["n"]
        return batch

    if every_s <= 0:
        return up
    return op.flat_map_batch(step_id, up, count)
