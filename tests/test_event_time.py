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
from flows.main import CHANNELS, RunConfig, run
from flows.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

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
