"""Replay writes point-in-time feature tables that agree exactly with the online features."""

import json
import os
import uuid

import pytest

from connectors.generator import GenConfig, Generator, write_jsonl
from connectors.memory_store import MemoryStore
from connectors.parquet_sink import read_view
from features.definitions import DECISION_VIEWS, REGISTRY, SESSION_INDEX_VIEWS, USER_ACTIVITY
from features.windows import RINGS
from flows.__main__ import main as cli
from flows.main import RunConfig, run
from flows.settings import Settings


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    d = tmp_path_factory.mktemp("hist")
    recs = list(Generator(GenConfig(seed=9, users=150, items=80, events=5000,
                                    malformed_rate=0.01)).records())
    write_jsonl(str(d / "events.jsonl"), iter(recs))
    # a batch job: a recovery store in the environment is not used (a resume would rewrite
    # each worker's Parquet file from the resumed epoch on, losing the rows before it)
    os.environ["BESPOKE_RECOVERY_DIR"] = str(d / "rec")
    try:
        assert cli(["replay", "--input", str(d / "events.jsonl"), "--output",
                    str(d / "replay"), "--progress", "0"]) == 0
    finally:
        del os.environ["BESPOKE_RECOVERY_DIR"]
    assert not (d / "rec").exists()
    return d, recs


def test_online_and_replayed_features_agree_exactly(history):
    d, _ = history
    name = uuid.uuid4().hex
    run(RunConfig(inputs=[str(d / "events.jsonl")], output=str(d / "online"),
                  store=f"memory://{name}", settings=Settings(_env_file=None,
                                                                progress_every_s=0)))
    online = MemoryStore.shared(name)
    checked = 0
    for view in REGISTRY:
        if view in DECISION_VIEWS or view in SESSION_INDEX_VIEWS:  # only a deciding flow's
            continue
        table = read_view(d / "replay" / "features", view.store_prefix).to_pylist()
        last = {}
        for row in table:  # file order is emission order: the last row per key is the newest
            last[row["key"]] = row
        entity = "item" if view.entity == "item_pair" else view.entity
        keys = sorted(last)
        for key, stored in zip(keys, online.read_many(entity, keys), strict=True):
            assert stored is not None, (view.name, key)
            for f in view.fields:
                assert stored[f"{view.store_prefix}.{f.name}"] == last[key][f.name], (
                    view.name, key, f.name)
                checked += 1
    assert checked > 10_000


def test_replayed_rows_never_see_the_future(history):
    """user_activity as of T counts exactly the user's events up to T (bucket windows)."""
    d, recs = history
    events = [json.loads(r.value) for r in recs if not r.malformed]
    by_user: dict[str, list[tuple[int, str]]] = {}
    for e in events:
        if e["type"] in ("page_view", "click", "add_to_cart", "order"):
            by_user.setdefault(e["user_id"], []).append((e["ts"], e["type"]))
    kinds = {"views": ("page_view", "click"), "carts": ("add_to_cart",), "orders": ("order",)}
    rows = read_view(d / "replay" / "features", USER_ACTIVITY.store_prefix).to_pylist()
    assert len(rows) == sum(len(v) for v in by_user.values())  # one row per user event
    for row in rows[::7]:
        t = row["as_of"]
        for name, (size, n) in RINGS.items():
            for col, ks in kinds.items():
                def count(pred, ks=ks, size=size, n=n, t=t, user=row["key"]):
                    return sum(1 for ts, k in by_user[user] if k in ks and pred(ts)
                               and t // size - n < ts // size <= t // size)
                seen = row[f"{col}_{name}"]
                # never more than every event up to T, never less than every event before T
                assert count(lambda ts, t=t: ts < t) <= seen <= count(lambda ts, t=t: ts <= t)
