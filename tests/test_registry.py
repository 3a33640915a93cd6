"""Feature definitions are a governed data contract."""

import json
from pathlib import Path

import pytest

from features.definitions import REGISTRY, USER_ACTIVITY
from features.registry import FeatureField, Registry, RegistryError
from scripts.export_registry import EXPORT, LOCK, render_export

ROOT = Path(__file__).resolve().parents[1]


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
    from features.category_features import CategoryFold, CategoryInput

    uf, itf, cf, catf = UserFold(3_600_000), ItemFold(3_600_000), CovisFold(), CategoryFold()
    users, items, covis, cats = {}, {}, {}, {}
    seen = set()
    for i, r in enumerate(Generator(GenConfig(seed=2, users=30, items=40, events=2000,
                                              malformed_rate=0)).records()):
        ev = validate_record(RawRecord("g", 0, i, r.value, 0))[0][0]
        outs = []
        for x in item_inputs(ev):
            outs += itf.apply(items.setdefault(x[0], itf.new()), x)
            outs += itf.rows(items[x[0]], x[0])
        for c in [o for o in outs if type(o) is CategoryInput]:
            catf.apply(cats.setdefault(c.category, catf.new()), c)
            outs += catf.rows(cats[c.category], c.category)
        for x in user_inputs(ev) + [o for o in outs if type(o) is AffinityHint]:
            for o in uf.apply(users.setdefault(x[0], uf.new()), x):
                if type(o) is tuple:
                    cf.apply(covis.setdefault(o[0], cf.new()), o)
                    outs += cf.rows(covis[o[0]], o[0])
            outs += uf.rows(users[x[0]], x[0])
        for w in outs:
            if hasattr(w, "view"):
                assert set(w.fields) == by_prefix[w.view], w.view
                seen.add(w.view)
    assert seen == set(by_prefix)
