"""Event time survives catch-up: a pre-filled 4-partition topic read by one worker gives the
same late events and the same feature store as a file run of the same events.

Without the source's event-time alignment the partitions are fetched in chunks, a fast
partition runs ahead, entities' watermarks jump with it and the slow partitions' events are
"late" (the first run shows it, so the comparison is not vacuous)."""

from __future__ import annotations

import json
import uuid

import pytest

from connectors.file_sink import read_channel
from connectors.generator import GenConfig, Generator, write_jsonl
from connectors.kafka_admin import ensure_topics, produce_all
from connectors.memory_store import MemoryStore
from features.channels import NAMES as CHANNELS
from features.ingest import expand, ingest
from features.native import available
from features.validate import RawRecord
from flows.main import RunConfig, run
from flows.settings import Settings

ENTITIES = ("item", "category", "item_pair", "user", "session")


def _store(name: str) -> dict:
    store = MemoryStore.shared(name)
    out = {}
    for entity in ENTITIES:
        keys = store.keys(entity)
        out[entity] = dict(zip(keys, store.read_many(entity, keys), strict=True))
    return out


def _run(tmp, inputs, settings) -> tuple[list[dict], dict]:
    name = uuid.uuid4().hex
    out = tmp / name
    run(RunConfig(inputs=inputs, output=str(out), store=f"memory://{name}", decisions=False,
                  settings=settings))
    late = [json.loads(b) for b in read_channel(out, "late_events")]
    return late, _store(name)


@pytest.mark.kafka
@pytest.mark.slow
def test_backlog_catch_up_matches_the_file_run(kafka_bootstrap, topic_prefix, tmp_path):
    recs = list(Generator(GenConfig(seed=8, users=300, items=150, events=20_000,
                                    malformed_rate=0.0)).records())
    events = tmp_path / "events.jsonl"
    write_jsonl(str(events), recs)
    common = {"_env_file": None, "progress_every_s": 0, "allowed_lateness_s": 60.0,
              "mirror_every_s": 0.5}
    file_late, file_store = _run(tmp_path, [str(events)], Settings(**common))

    topic = f"{topic_prefix}events"
    ensure_topics(kafka_bootstrap, {topic: 4} | {f"{topic_prefix}{c}": 4 for c in CHANNELS})
    produce_all(kafka_bootstrap, topic, ((r.key, r.value, r.ts) for r in recs))
    kafka = {**common, "kafka_bootstrap_servers": kafka_bootstrap, "topic_prefix": topic_prefix,
             "input_topics": [topic]}

    unaligned_late, _ = _run(tmp_path, ["kafka"], Settings(**kafka, align_partitions=False))
    assert len(unaligned_late) > len(file_late)  # the problem is real here

    late, store = _run(tmp_path, ["kafka"], Settings(**kafka))
    assert sorted(e["id"] for e in late) == sorted(e["id"] for e in file_late)
    for entity in ENTITIES:
        assert store[entity] == file_store[entity], _diff(store[entity], file_store[entity])


def _diff(a: dict, b: dict) -> list:
    return [(k, f, a[k].get(f), (b.get(k) or {}).get(f)) for k in a for f in a[k]
            if a[k].get(f) != (b.get(k) or {}).get(f)][:4]


YEAR_2099 = 4_070_908_800_000


def test_a_far_future_event_is_a_dead_letter_and_moves_no_watermark(tmp_path):
    recs = list(Generator(GenConfig(seed=5, users=50, items=30, events=3000,
                                    malformed_rate=0.0)).records())
    mid = next(i for i, r in enumerate(recs[len(recs) // 2:], len(recs) // 2)
               if r.type == "page_view")
    doc = json.loads(recs[mid].value)
    doc.update(ts=YEAR_2099, event_id="from-the-future")
    lines = [r.value for r in recs]
    lines.insert(mid, json.dumps(doc).encode())
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    unbounded, _ = _run(tmp_path / "unbounded", [str(events)],
                        Settings(_env_file=None, progress_every_s=0, max_future_s=10**10))
    assert len(unbounded) > 10  # the item's and the user's later events, all "late"
    late, _ = _run(tmp_path, [str(events)], Settings(_env_file=None, progress_every_s=0))
    assert late == []
    out = next(d for d in tmp_path.iterdir() if (d / "dead_letters").exists())
    dead = [json.loads(b) for b in read_channel(out, "dead_letters")]
    assert [d["error"].split(":")[0] for d in dead] == ["future"]


@pytest.mark.skipif(not available(), reason="bespoke_native is not built")
def test_the_future_bound_is_the_same_on_the_native_path():
    now = 1_700_000_000_000
    recs = [RawRecord("t", 0, i, json.dumps(
        {"type": "page_view", "event_id": f"e{i}", "ts": now + d, "user_id": "u",
         "session_id": "s", "sku": "A"}).encode(), received)
        for i, (d, received) in enumerate([(0, now), (3_600_001, now), (3_600_000, now),
                                           (10**12, 0), (10**9, now)])]
    native = expand(ingest(recs, native=True, max_future_ms=3_600_000))
    python = expand(ingest(recs, native=False, max_future_ms=3_600_000))
    assert [d.offset for d in native[3]] == [d.offset for d in python[3]] == [1, 4]
    assert len(native[1]) == len(python[1]) == 3
