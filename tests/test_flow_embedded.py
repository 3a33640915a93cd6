"""The thin flow end to end in embedded mode: files in, files and in-process store out."""

import json
import uuid

import pytest

from connectors.file_sink import read_channel
from connectors.generator import GenConfig, Generator, write_jsonl
from connectors.memory_store import MemoryStore
from flows.main import RunConfig, run
from flows.settings import Settings
from tests.flow_checks import (
    ITEM_COUNT,
    USER_COUNT,
    check_feed_ids,
    counts_in_store,
    expected_counts,
)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    cfg = GenConfig(seed=11, users=300, items=150, events=6000, malformed_rate=0.03)
    recs = list(Generator(cfg).records())
    path = tmp_path_factory.mktemp("gen") / "events.jsonl"
    write_jsonl(str(path), iter(recs))
    return path, recs


@pytest.mark.parametrize("workers", [1, 2])
def test_embedded_flow_counts_match(generated, tmp_path, workers):
    path, recs = generated
    store_name = uuid.uuid4().hex
    cfg = RunConfig(inputs=[str(path)], output=str(tmp_path), store=f"memory://{store_name}",
                    settings=Settings(progress_every_s=0, _env_file=None))
    run(cfg, workers=workers)

    users, items, malformed = expected_counts(recs)
    store = MemoryStore.shared(store_name)

    dead = [json.loads(b) for b in read_channel(tmp_path, "dead_letters")]
    assert len(dead) == malformed > 0
    bad_lines = {i for i, r in enumerate(recs) if r.malformed}
    assert {d["offset"] for d in dead} == bad_lines
    assert all(d["error"] and d["source"] == "events.jsonl" for d in dead)

    assert counts_in_store(store, "item", items, ITEM_COUNT) == dict(items)
    assert counts_in_store(store, "user", users, USER_COUNT) == dict(users)
    assert set(store.keys("user")) == set(users)

    feeds = [json.loads(b) for b in read_channel(tmp_path, "feed_updates")]
    assert feeds
    check_feed_ids(feeds)
    assert len({f["id"] for f in feeds}) == len(feeds)  # no recovery here: no duplicates
    last = {}
    for f in sorted(feeds, key=lambda f: f["ts"]):
        last[f["user_id"]] = f
    for user, f in last.items():
        stored = store.read_many("feed", [user])[0]
        assert stored is not None and stored["feed_v1.id"] == f["id"]
