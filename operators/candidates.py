"""Candidate step: the items worth judging for a user's feed, from four sources.

Retrieval is a plan of the agent (``FEED_PLAN``, steps over the tool runtime, each
optional: a failed or open-breaker source is skipped and recorded, the feed goes on; a
source with nothing to start from, no recent items or no categories yet, is not called):

- the user's recent interests (decayed, from the user's features; no tool call);
- ``covis_candidates``: items co-visited with the user's last items;
- ``category_trending``: items trending now in the user's strongest categories;
- ``new_arrivals``: the newest items in those categories.

Scores from each source are scaled to [0, 1] and weighted (interest 1.0, co-visitation
0.6, trending 0.4, new arrivals 0.25); an item found by several sources adds them up. Items
the user bought are left out; at most ``limit`` candidates go on, strongest first.

The arithmetic is ``features.retrieval`` (native when built and ``native`` is set).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import bytewax.operators as op
from bytewax.dataflow import Stream

from features.retrieval import kernels
from features.user_features import UserFeatures
from operators.plans import AGENT_SCOPES, Plan, PlanRun, Step, run_plans
from operators.tools import ToolRuntime

FEED_PLAN = Plan(name="feed-candidates", version="2", goal="refresh_feed", steps=[
    Step(id="covis", tool="covis_candidates",
         inputs={"items": "features.recent", "limit": "const:30"}, optional=True,
         skip_if_empty="items"),
    Step(id="trending", tool="category_trending",
         inputs={"categories": "features.categories", "limit": "const:30"}, optional=True,
         skip_if_empty="categories"),
    Step(id="new", tool="new_arrivals",
         inputs={"categories": "features.categories", "limit": "const:15"}, optional=True,
         skip_if_empty="categories"),
])


class Retrieval(NamedTuple):
    """How the candidates were found (for the decision record)."""

    calls: list[dict]
    fallbacks: list[str]
    sources: dict[str, str]  # sku -> the source that found it first (by weight)


Candidates = tuple[UserFeatures, list[tuple[str, float]], Retrieval]


class Prefetch(Protocol):
    """Warms the caches the tools and the decision step read (``operators.policy``)."""

    def prefetch(self, feats: list[UserFeatures]) -> None: ...

    def prefetch_facts(self, skus: list[str]) -> None: ...


def candidates(step_id: str, feats: Stream, runtime: Callable[[], ToolRuntime],
               limit: int = 50, native: bool = True, prefetch: Prefetch | None = None
               ) -> Stream:
    """chunks of UserFeatures → chunks of (UserFeatures, candidates, Retrieval); erasures
    pass through with no candidates. The plan runs for the whole chunk at once (each
    retrieval tool is one governed call for all its users, each user keeping its own
    records); with ``prefetch``, the rows the chunk's decisions will read are fetched first
    (one store round trip per entity, not one per tool call)."""
    merge = kernels(native).merge
    steps = [step.id for step in FEED_PLAN.steps]

    def pick(f: UserFeatures, run: PlanRun) -> Candidates:
        found = {sid: run.outputs[sid]["items"] for sid in steps if sid in run.outputs}
        items, sources = merge(f.interests, found, set(f.purchased), limit)
        return f, items, Retrieval(run.calls, run.fallbacks, sources)

    def run(chunks: list) -> list:
        batch = [f for c in chunks for f in c]
        if prefetch is not None:
            prefetch.prefetch(batch)
        live = [f for f in batch if not f.erased]
        # one governed call per retrieval tool for the whole chunk
        runs = iter(run_plans(FEED_PLAN, runtime(), AGENT_SCOPES,
                              [{"event_id": f.event_id} for f in live],
                              [{"recent": list(f.recent), "categories": list(f.categories)}
                               for f in live]))
        out = [(f, [], Retrieval([], [], {})) if f.erased else pick(f, next(runs))
               for f in batch]
        if prefetch is not None:
            prefetch.prefetch_facts([s for _, items, _ in out for s, _ in items]
                                    + [f.skus[0] for f in batch if f.skus])
        return [out] if out else []

    return op.flat_map_batch(step_id, feats, run)
