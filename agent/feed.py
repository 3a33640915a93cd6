"""The ``refresh_feed`` goal: retrieval plan, candidate merge, policy-checked selection.

Retrieval is a plan (``FEED_PLAN``, steps over the tool runtime, each optional: a failed or
open-breaker source is skipped and recorded, the feed goes on; a source with nothing to
start from, no recent items or no categories yet, is not called):

- the user's recent interests (decayed, from the user's features; no tool call);
- ``covis_candidates``: items co-visited with the user's last items (damped by recency),
  and in the same call, ``covis_last``: items co-visited with the last item alone;
- ``category_trending``: items trending now in the user's strongest categories;
- ``new_arrivals``: the newest items in those categories;
- ``session_neighbours``: session-kNN, the items in the trails of the keys whose recent
  items overlap the user's most (``features.retrieval.session_knn``);
- ``popular_items``: the catalog's most popular items (what a key with no history, or a
  catalog without categories, still has to go on).

Scores from each source are scaled to [0, 1] and weighted (interest 1.0, co-visitation
0.6, last item's co-visitation 0.3, trending 0.4, new arrivals 0.25, session-kNN 0.05,
popular 0.01: it fills a short list, it does not displace); an item found by several
sources adds them up. At most ``limit`` candidates go on, strongest first (the arithmetic
is ``features.retrieval``, native when built). The ranked candidates are judged by the
policy pack and the top K selected under its exposure rules; the feed is sent when it
changed, and every decision is recorded. Items the user bought stay candidates: whether
they are shown again is the pack's rule (the default pack's ``already-purchased`` denies
them, with a verdict in the record; a pack can scope it to durable categories).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from agent.plans import AGENT_SCOPES, Plan, PlanRun, Step, run_plans
from agent.records import Records, record_out, sources_text
from agent.tools import ToolRuntime
from features.category_features import POP_K as POPULAR_DEPTH
from features.channels import FEED
from features.definitions import FEED_VIEW
from features.events import FeedUpdate, event_doc, outgoing_doc
from features.retrieval import kernels
from features.score import MODEL_VERSION
from features.store import StoreWrite
from features.user_features import UserFeatures
from policies.evaluate import UserContext
from policies.lifecycle import PolicyEngine
from policies.privacy import decision_id

NON_PERSONALIZED = "non-personalized"

FEED_PLAN = Plan(name="feed-candidates", version="7", goal="refresh_feed", steps=[
    Step(id="covis", tool="covis_candidates",
         inputs={"items": "features.recent", "limit": "const:30", "last_limit": "const:20"},
         optional=True, skip_if_empty="items"),
    Step(id="trending", tool="category_trending",
         inputs={"categories": "features.categories", "limit": "const:30"}, optional=True,
         skip_if_empty="categories"),
    Step(id="new", tool="new_arrivals",
         inputs={"categories": "features.categories", "limit": "const:15"}, optional=True,
         skip_if_empty="categories"),
    # last: an item another source also found keeps that source as its reason
    Step(id="sknn", tool="session_neighbours",
         inputs={"key": "features.user", "limit": "const:30"}, optional=True,
         skip_if_empty="key"),
    # as deep as the items left out take (``exclude_seen``): 30 of them remain
    Step(id="popular", tool="popular_items", inputs={"limit": "features.popular_limit"},
         optional=True),
])
_STEPS = [step.id for step in FEED_PLAN.steps]


class Retrieval(NamedTuple):
    """How the candidates were found (for the decision record)."""

    calls: list[dict[str, Any]]
    fallbacks: list[str]
    sources: dict[str, str]  # sku -> the source that found it first (by weight)
    lists: dict[str, dict[str, float]] = {}  # source -> sku -> its score there (a ranker's)


Retrieved = tuple[UserFeatures, list[tuple[str, float]], Retrieval]
NONE_FOUND = Retrieval([], [], {})


POPULAR_LIMIT = 30


def popular_limit(left_out: int) -> int:
    """How many popular items to ask for: ``POPULAR_LIMIT``, plus one per item that will be
    left out (``exclude_seen``; at most ``POPULAR_DEPTH``, the length of the published
    list), so that a key that has seen most of the catalog's favourites still gets popular
    items it has not.

    >>> popular_limit(0), popular_limit(3), popular_limit(10_000) == POPULAR_DEPTH
    (30, 33, True)
    """
    return min(POPULAR_DEPTH, POPULAR_LIMIT + left_out)


def retrieve(feats: list[UserFeatures], runtime: ToolRuntime, limit: int,
             native: bool = True, lists: bool = False,
             exclude_seen: bool = False, knn: bool = True) -> list[Retrieved]:
    """The candidates of each user event (erasures get none). Each retrieval tool is one
    governed call for all the users (``run_plans``), each user keeping its own records.
    ``lists``: keep each source's scores (``Retrieval.lists``, for a learned ranker);
    ``exclude_seen``: leave out the items the user interacted with (recent ones and
    purchases: a domain where an item is consumed once); ``knn``: ask session-kNN (off: its
    step is recorded as skipped)."""
    merge = kernels(native).merge
    live = [f for f in feats if not f.erased]
    left_outs = [{*f.purchased, *f.recent} if exclude_seen else set() for f in live]
    runs = iter(run_plans(FEED_PLAN, runtime, AGENT_SCOPES,
                          [{"event_id": f.event_id} for f in live],
                          [{"recent": list(f.recent), "categories": list(f.categories),
                            "user": f.user_id if knn else "",
                            "popular_limit": popular_limit(len(left_out))}
                           for f, left_out in zip(live, left_outs, strict=True)]))
    excluded = iter(left_outs)

    def pick(f: UserFeatures, run: PlanRun, left_out: set[str]) -> Retrieved:
        found = {}
        for sid in _STEPS:
            got = run.outputs.get(sid)
            if got is not None:
                found[sid] = got["items"]
                if got.get("last"):  # the covis step's second list (one call, same rows)
                    found["covis_last"] = got["last"]
        items, sources = merge(f.interests, found, left_out, limit)
        if not lists:
            return f, items, Retrieval(run.calls, run.fallbacks, sources)
        return f, items, Retrieval(run.calls, run.fallbacks, sources,
                                   {src: dict(v) for src, v in found.items()})

    return [(f, [], NONE_FOUND) if f.erased else pick(f, next(runs), next(excluded))
            for f in feats]


def choose_feed(gate: Any, eng: PolicyEngine, user: UserContext, ts: int,
                ranked: list[tuple[str, float]],
                k: int, facts: list[Any] | None = None) -> tuple[list[str], list[int], Any]:
    """The policy-checked top ``k`` of ranked candidates: (their skus, the chosen
    positions, the engine's outcome). None are chosen when the policy suppresses the feed
    or the user has no personalization consent (the app's default applies). ``facts``:
    the candidates' item facts in ``ranked``'s order, when read already."""
    skus = [s for s, _ in ranked]
    cands = gate.candidates(skus, facts)
    outcome = eng.evaluate(user, "recommend", cands, ts)
    r = outcome.result
    if r.suppressed or not r.personalized:
        return skus, [], outcome
    return skus, eng.packs[f"{r.pack}@{r.version}"].select(r, r.allowed, cands, k), outcome


def decide_feed(ctx: Any, last: tuple[str, ...] | None, f: UserFeatures,
                ranked: list[tuple[str, float]], found: Retrieval, eng: PolicyEngine,
                user: UserContext, model_version: str = MODEL_VERSION,
                facts: list[Any] | None = None, overrides: tuple[str, ...] = ()
                ) -> tuple[tuple[str, ...] | None, list[Any]]:
    """The feed decision for one trigger: (the feed now sent to the user, outputs).
    ``ctx``: the decision context (``agent.decide.DecisionFold``: gate, k, ttl, records);
    ``model_version``: what ranked the candidates; ``facts``: their item facts, if read;
    ``overrides``: the operator overrides applied to the candidates (``id@version``)."""
    records: Records = ctx.records
    skus, chosen, outcome = choose_feed(ctx.gate, eng, user, f.ts, ranked, ctx.k, facts)
    r = outcome.result
    picked = tuple([skus[i] for i in chosen])
    model = model_version if r.personalized else NON_PERSONALIZED
    # nothing new to say (the same feed, or every candidate denied): no feed update, yet
    # the decision is recorded like every other
    unchanged = not r.suppressed and (picked == last or (not picked and r.personalized))
    if not unchanged:
        last = picked
    ref = records.user_ref(f.user_id)
    fid = decision_id("feed", ref, f.event_id)
    out: list[Any] = []
    if not r.suppressed and not unchanged:
        # built from our own, already validated values: no re-validation on the hot path
        # (tests validate every emitted event against the contracts)
        items, parts = [], []
        for i in chosen:
            sku, sc = ranked[i]
            sc = round(sc, 6)
            items.append({"sku": sku, "score": sc, "reason": found.sources.get(sku, "interest")})
            parts.append(f"{sku}:{sc:.4f}")
        policy = f"{r.pack}@{r.version}"
        fu = event_doc(FeedUpdate, id=fid, ts=f.ts, user_id=f.user_id, items=items,
                       trigger_event_id=f.event_id, model_version=model,
                       policy_version=policy)
        out += [outgoing_doc(FEED.name, f.user_id, fu),
                StoreWrite("feed", f.user_id, FEED_VIEW.store_prefix,
                           {"items": ",".join(parts), "id": fid, "model_version": model,
                            "policy_version": policy}, f.ts, ctx.ttl)]
    fallbacks = list(found.fallbacks)
    if ctx.gate.store_degraded:
        fallbacks.append("store_unavailable")
    if not r.personalized:
        fallbacks.append("non_personalized")
    rec = records.base(fid, "feed_update", f, FEED_PLAN, model, r.suppressed, found.calls,
                       outcome, skus)
    if overrides:
        rec["overrides"] = list(overrides)
    out.append(record_out({
        **rec, "fallbacks": fallbacks,
        "output": {"items": list(picked), **({"unchanged": True} if unchanged else {})},
        "explanation": _why(r, f, skus, picked, unchanged, found)}))
    return last, out


def _why(r: Any, f: UserFeatures, skus: list[str], picked: tuple[str, ...], unchanged: bool,
         found: Retrieval) -> str:
    if r.suppressed:
        return "suppressed by policy: " + "; ".join(
            v.reason for v in r.verdicts if v.subject < 0)
    if unchanged and not picked:
        return (f"no feed update: all {len(skus)} candidates were denied by "
                f"{r.pack}@{r.version}; the user keeps the current feed")
    if unchanged:
        return "no feed update: the ranked, policy-checked feed is the one already sent"
    if not r.personalized:
        return "no personalization consent: the non-personalized default applies"
    by: dict[str, int] = {}
    for sku in picked:
        src = found.sources.get(sku, "interest")
        by[src] = by.get(src, 0) + 1
    return (f"because of {sources_text(by, f)}; in stock and within policy "
            f"({len(r.denied)} of {len(skus)} candidates filtered by {r.pack}@{r.version})")
