"""Feature definitions are a governed data contract."""

import json
from pathlib import Path

import pytest

from features.definitions import DECISION_VIEWS, MODEL_VIEW, REGISTRY, USER_ACTIVITY
from features.registry import FeatureField, Registry, RegistryError
from scripts.export_registry import EXPORT, LOCK, render_export

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_match_the_released_lock():
    """Changing a view without bumping its version fails here (then: bump, make registry)."""
    problems = REGISTRY.check_against(json.loads(LOCK.read_text()))
    assert problems == []
    assert set(json.loads(LOCK.read_text())) >= {v.name for v in REGISTRY}, "run make registry"


def test_exported_contract_is_current():
    assert EXPORT.read_text() == render_export(), "run make registry"


def test_a_silent_change_is_caught_and_a_bump_is_accepted():
    lock = REGISTRY.lock()
    changed = USER_ACTIVITY.model_copy(update={"ttl_s": 1})
    others = [v for v in REGISTRY if v.name != "user_activity"]
    assert Registry([changed, *others]).check_against(lock) == [
        "user_activity: definition changed but version is still 1 (bump it)"]
    bumped = changed.model_copy(update={"version": 2})
    assert Registry([bumped, *others]).check_against(lock) == []
    older = USER_ACTIVITY.model_copy(update={"version": 0 + 1})
    assert Registry([older, *others]).check_against({"user_activity": {
        "version": 3, "fingerprint": "x"}})[0].startswith("user_activity: version went back")
    # description and owner are not part of the meaning
    reworded = USER_ACTIVITY.model_copy(update={"description": "new words", "owner": "x"})
    assert Registry([reworded, *others]).check_against(lock) == []


def test_duplicates_are_refused():
    with pytest.raises(RegistryError, match="duplicate feature view"):
        Registry([USER_ACTIVITY, USER_ACTIVITY])
    bad = USER_ACTIVITY.model_copy(update={"fields": [FeatureField(name="a", dtype="int"),
                                                      FeatureField(name="a", dtype="int")]})
    with pytest.raises(RegistryError, match="duplicate field"):
        Registry([bad])


def test_every_field_the_folds_write_is_declared():
    """Rows written to the store carry exactly the fields their view declares."""
    from connectors.generator import GenConfig, Generator
    from features.covisitation import CovisFold
    from features.interactions import AffinityHint, item_inputs, user_inputs
    from features.item_features import ItemFold
    from features.user_features import UserFold
    from features.validate import RawRecord, validate_record

    by_prefix = {v.store_prefix: {f.name for f in v.fields} for v in REGISTRY}
    from features.category_features import (
        CategoryFold,
        CategoryInput,
        PopularFold,
        popular_inputs,
    )
    from features.session_index import ItemKeysFold, TrailFold, touches, trail_inputs
    from features.user_features import UserFeatures

    uf, itf, cf, catf = (UserFold(3_600_000, None, True), ItemFold(3_600_000), CovisFold(),
                         CategoryFold())
    kf, tf, pf = ItemKeysFold(), TrailFold(), PopularFold()
    popular = pf.new()
    users, items, covis, cats, keys, trails = {}, {}, {}, {}, {}, {}
    seen = set()
    for i, r in enumerate(Generator(GenConfig(seed=2, users=30, items=40, events=2000,
                                              malformed_rate=0)).records()):
        ev = validate_record(RawRecord("g", 0, i, r.value, 0))[0][0]
        outs = []
        for x in item_inputs(ev):
            outs += itf.apply(items.setdefault(x[0], itf.new()), x)
            outs += itf.rows(items[x[0]], x[0])
            for p in popular_inputs(x):
                pf.apply(popular, p)
                outs += pf.rows(popular, p.key)
        for c in [o for o in outs if type(o) is CategoryInput]:
            catf.apply(cats.setdefault(c.category, catf.new()), c)
            outs += catf.rows(cats[c.category], c.category)
        for x in user_inputs(ev) + [o for o in outs if type(o) is AffinityHint]:
            for o in uf.apply(users.setdefault(x[0], uf.new()), x):
                if type(o) is tuple:
                    cf.apply(covis.setdefault(o[0], cf.new()), o)
                    outs += cf.rows(covis[o[0]], o[0])
                elif type(o) is UserFeatures:
                    for t in touches([o]):
                        kf.apply(keys.setdefault(t[0], kf.new()), t)
                        outs += kf.rows(keys[t[0]], t[0])
                    for u in trail_inputs([o]):
                        tf.apply(trails.setdefault(u[0], tf.new()), u)
                        outs += tf.rows(trails[u[0]], u[0])
            outs += uf.rows(users[x[0]], x[0])
        for w in outs:
            if hasattr(w, "view"):
                assert set(w.fields) == by_prefix[w.view], w.view
                seen.add(w.view)
    # the feed view is the decision step's (agent.feed), checked by the bump test below; the
    # model view the learner's (agent.learner), checked here too
    assert seen == set(by_prefix) - {v.store_prefix for v in DECISION_VIEWS}
    from agent.learner import FeedLearner, Outcome
    from agent.ranker import FEATURES

    learner = FeedLearner(publish_every=1)
    writes = [w for w in learner.apply(learner.new(), Outcome("m", 1, "e", (0.0,) * len(
        FEATURES), 1)) if hasattr(w, "view")]
    assert writes and all(set(w.fields) == by_prefix[MODEL_VIEW.store_prefix] for w in writes)


_BUMPED_RUN = r"""
import json, sys
import features.definitions as d
from features.registry import Registry
bumped = {}
for name in ("ITEM_PRICE", "ITEM_STOCK", "ITEM_CATALOG", "ITEM_COVISITATION", "CATEGORY_ITEMS",
             "FEED_VIEW", "MODEL_VIEW"):
    v = getattr(d, name)
    bumped[name] = v.model_copy(update={"version": v.version + 1})
    setattr(d, name, bumped[name])
d.REGISTRY = Registry([bumped.get(n, getattr(d, n)) for n in (
    "USER_ACTIVITY", "USER_AFFINITY", "USER_RECENCY", "USER_CART", "USER_PURCHASES",
    "SESSION_STATE", "ITEM_POPULARITY", "ITEM_STOCK", "ITEM_PRICE", "ITEM_CATALOG",
    "ITEM_COVISITATION", "CATEGORY_ITEMS", "FEED_VIEW", "MODEL_VIEW")])

from connectors.generator import GenConfig, Generator, write_jsonl
from connectors.memory_store import MemoryStore
from connectors.file_sink import read_channel
from flows.main import RunConfig, run
from flows.settings import Settings

out = sys.argv[1]
write_jsonl(out + "/events.jsonl", Generator(GenConfig(seed=3, users=300, items=200,
                                                       events=6000)).records())
run(RunConfig(inputs=[out + "/events.jsonl"], output=out + "/out", store="memory://bump",
              settings=Settings(_env_file=None, progress_every_s=0, mirror_every_s=0,
                                ranker_publish_every=50, ranker_min_examples=100,
                                ranker_refresh_s=0)))
store = MemoryStore.shared("bump")
cols = set()
for entity in ("item", "category", "feed", "model"):
    for row in store.read_many(entity, store.keys(entity)):
        cols |= set(row or {})
feeds = [json.loads(b) for b in read_channel(out + "/out", "feed_updates")]
print(json.dumps({
    "columns": sorted(cols),
    "offers": len(read_channel(out + "/out", "offers")),
    "configurations": len(read_channel(out + "/out", "configurations")),
    "reasons": sorted({i["reason"] for f in feeds for i in f["items"]}),
    "models": sorted({f["model_version"] for f in feeds}),
}))
"""


@pytest.mark.slow
def test_a_version_bump_reaches_every_reader(tmp_path):
    """Readers name store columns through the registry: with the item, category, feed and
    model views' versions bumped, the decision flow still reads its facts (prices for offers,
    stock and options for configurations, neighbours and category lists for the feed) and
    its learned ranker's versions."""
    import os
    import subprocess
    import sys

    got = subprocess.run([sys.executable, "-c", _BUMPED_RUN, str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert got.returncode == 0, got.stderr[-3000:]
    res = json.loads(got.stdout.strip().splitlines()[-1])
    prefixes = {c.split(".")[0] for c in res["columns"]}
    assert {"item_price_v2", "item_stock_v2", "item_catalog_v3", "item_covisitation_v2",
            "category_items_v2", "feed_v2", "model_v4"} <= prefixes
    assert not {"item_price_v1", "item_catalog_v2", "feed_v1", "model_v3"} & prefixes
    assert any(m.startswith("feed-ranker-v1.") for m in res["models"])
    assert res["offers"] > 0 and res["configurations"] > 0
    assert {"covis", "trending"} <= set(res["reasons"])
