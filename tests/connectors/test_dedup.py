"""Duplicate event ids are skipped and counted, in a file and over Kafka across a resume
(the ids a partition remembers are in its snapshot)."""

from __future__ import annotations

import json
import uuid

import pytest

from connectors.file_sink import read_channel
from connectors.generator import GenConfig, Generator
from connectors.kafka_admin import ensure_topics, produce_all
from connectors.memory_store import MemoryStore
from features.channels import NAMES as CHANNELS
from flows.main import RunConfig, run
from flows.settings import Settings
from tests.flow_checks import USER_COUNT, expected_counts


def _records(seed: int):
    recs = list(Generator(GenConfig(seed=seed, users=40, items=30, events=1500,
                                    malformed_rate=0.0)).records())
    view = next(r for r in recs[100:] if r.type == "page_view")
    return recs, view


def _user_count(store_name: str, user: str) -> int:
    return MemoryStore.shared(store_name).read_many("user", [user])[0][USER_COUNT]


def test_copies_of_an_event_in_a_file_count_once(tmp_path):
    recs, view = _records(11)
    at = recs.index(view)
    lines = [r.value for r in recs]
    lines[at + 1:at + 1] = [view.value] * 4  # a producer's retries
    src = tmp_path / "e.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    name = uuid.uuid4().hex
    run(RunConfig(inputs=[str(src)], output=str(tmp_path / "o"), store=f"memory://{name}",
                  decisions=False, settings=Settings(_env_file=None, progress_every_s=0)))
    users, _, _ = expected_counts(recs)
    user = json.loads(view.value)["user_id"]
    assert _user_count(name, user) == users[user]
    dead = [json.loads(b) for b in read_channel(tmp_path / "o", "dead_letters")]
    assert [d["error"].split(":")[0] for d in dead] == ["duplicate"] * 4
    assert sorted(d["offset"] for d in dead) == list(range(at + 1, at + 5))


@pytest.mark.kafka
@pytest.mark.slow
def test_a_duplicate_after_a_resume_is_still_skipped(kafka_bootstrap, topic_prefix, tmp_path):
    recs, view = _records(12)
    topic = f"{topic_prefix}events"
    ensure_topics(kafka_bootstrap, {topic: 2} | {f"{topic_prefix}{c}": 2 for c in CHANNELS})
    name = uuid.uuid4().hex
    cfg = RunConfig(inputs=["kafka"], output=str(tmp_path / "o"), store=f"memory://{name}",
                    decisions=False, settings=Settings(
                        _env_file=None, kafka_bootstrap_servers=kafka_bootstrap,
                        topic_prefix=topic_prefix, input_topics=[topic], progress_every_s=0,
                        recovery_dir=str(tmp_path / "rec"), epoch_interval_s=0.2))
    half = len(recs) // 2
    assert recs.index(view) < half
    produce_all(kafka_bootstrap, topic, ((r.key, r.value, r.ts) for r in recs[:half]))
    run(cfg)
    produce_all(kafka_bootstrap, topic, [(view.key, view.value, view.ts)]
                + [(r.key, r.value, r.ts) for r in recs[half:]])
    run(cfg)  # resumes from the recovery directory: offsets and remembered ids
    users, _, _ = expected_counts(recs)
    user = json.loads(view.value)["user_id"]
    assert _user_count(name, user) == users[user]
    dead = [json.loads(b) for b in read_channel(tmp_path / "o", "dead_letters")]
    assert [d["error"].split(":")[0] for d in dead] == ["duplicate"]
