"""The thin flow over a real Apache Kafka broker and a real Redis server."""

import base64
import json

import pytest

from connectors.generator import GenConfig, Generator
from connectors.kafka_admin import ensure_topics, produce_all
from connectors.redis_store import RedisStore
from features.channels import NAMES as CHANNELS
from features.definitions import FEED_VIEW
from flows.main import RunConfig, run
from flows.settings import Settings
from scripts.kafka_util import consume_all
from tests.flow_checks import (
    ITEM_COUNT,
    USER_COUNT,
    check_feed_ids,
    counts_in_store,
    expected_counts,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]


def test_kafka_to_kafka_and_redis(kafka_bootstrap, redis_url, redis_client, topic_prefix,
                                  tmp_path):
    s = Settings(_env_file=None, kafka_bootstrap_servers=kafka_bootstrap,
                 topic_prefix=topic_prefix, input_topics=[f"{topic_prefix}events"],
                 topic_partitions=3, progress_every_s=0, epoch_interval_s=0.5,
                 record_archive_dir=str(tmp_path / "archive"),
                 recovery_dir=str(tmp_path / "recovery"))
    recs = list(Generator(GenConfig(seed=21, users=200, items=120, events=4000,
                                    malformed_rate=0.04, configurable_share=0.3)).records())
    ensure_topics(kafka_bootstrap, {s.input_topics[0]: 3} |
                  {s.topic(ch): 3 for ch in CHANNELS})
    # the catalog and stock are loaded first (partitioned by sku), then the traffic arrives
    # (partitioned by user): the second run resumes where the first stopped (recovery)
    n_catalog = next(i for i, r in enumerate(recs) if r.type not in ("catalog", "inventory"))
    cfg = RunConfig(inputs=["kafka"], output="kafka", store=redis_url, settings=s)
    produce_all(kafka_bootstrap, s.input_topics[0], ((r.key, r.value) for r in recs[:n_catalog]))
    run(cfg, workers=2)
    produce_all(kafka_bootstrap, s.input_topics[0], ((r.key, r.value) for r in recs[n_catalog:]))
    run(cfg, workers=2)

    users, items, malformed = expected_counts(recs)
    # every malformed event is on the dead-letter topic, with its reason and original bytes
    dead = [json.loads(m.value()) for m in consume_all(kafka_bootstrap, s.topic("dead_letters"))]
    assert len(dead) == malformed > 0
    assert sorted(base64.b64decode(d["original"]) for d in dead) == sorted(
        r.value for r in recs if r.malformed)
    assert all(d["error"].split(":")[0] in ("invalid_json", "schema_violation") for d in dead)

    # feed updates on the output topic, keyed by user, with deterministic unique ids
    msgs = consume_all(kafka_bootstrap, s.topic("feed_updates"))
    feeds = [json.loads(m.value()) for m in msgs]
    assert feeds and all(m.key().decode() == f["user_id"] for m, f in zip(msgs, feeds,
                                                                         strict=True))
    check_feed_ids(feeds)
    assert len({f["id"] for f in feeds}) == len(feeds)
    assert {dict(m.headers())["bsp-id"].decode() for m in msgs} == {f["id"] for f in feeds}

    # features in Redis: no valid event lost, none counted twice
    store = RedisStore(redis_url)
    assert counts_in_store(store, "item", items, ITEM_COUNT) == dict(items)
    assert counts_in_store(store, "user", users, USER_COUNT) == dict(users)
    feed_rows = store.read_many("feed", sorted({f["user_id"] for f in feeds}))
    assert all(r is not None and r[FEED_VIEW.column("id")].startswith("feed:") for r in feed_rows)

    # all three decision kinds out, every decision recorded on the topic and in the archive
    offers = consume_all(kafka_bootstrap, s.topic("offers"))
    configs = consume_all(kafka_bootstrap, s.topic("configurations"))
    records = [json.loads(m.value()) for m in consume_all(kafka_bootstrap,
                                                          s.topic("decision_records"))]
    assert offers and configs and records
    kinds = {r["decision_type"] for r in records}
    assert kinds == {"feed_update", "offer", "configuration"}
    granted = sum(not r["suppressed"] and not r["output"].get("unchanged") for r in records)
    assert granted == len(feeds) + len(offers) + len(configs)
    from connectors.record_archive import read_archive

    assert read_archive(tmp_path / "archive").num_rows == len(records)


@pytest.mark.parametrize("delivery", ["batch", "epoch"])
def test_two_processes_over_kafka_partitions(kafka_bootstrap, redis_url, redis_client,
                                             topic_prefix, tmp_path, delivery):
    """The same flow as a 2-process Bytewax cluster (-i/-a on loopback) over 4 partitions
    (with ``epoch`` each worker of each process confirms its own outputs)."""
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    in_topic = f"{topic_prefix}events"
    ensure_topics(kafka_bootstrap, {in_topic: 4} | {f"{topic_prefix}{ch}": 4 for ch in CHANNELS})
    recs = list(Generator(GenConfig(seed=33, users=300, items=100, events=3000,
                                    malformed_rate=0.02)).records())
    produce_all(kafka_bootstrap, in_topic, ((r.key, r.value) for r in recs))
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "BESPOKE_TOPIC_PREFIX": topic_prefix, "BESPOKE_INPUT_TOPICS": json.dumps([in_topic]),
           "BESPOKE_PROGRESS_EVERY_S": "0", "BESPOKE_DELIVERY": delivery,
           "PY": __import__("sys").executable}
    out = subprocess.run([str(root / "scripts/run-cluster.sh"), "2", "1", "--input", "kafka",
                          "--output", "kafka", "--store", redis_url,
                          "--recovery-dir", str(tmp_path / "rec"), "--epoch-interval", "0.5"],
                         cwd=root, env=env, capture_output=True, timeout=300)
    assert out.returncode == 0, out.stdout.decode()[-2000:] + out.stderr.decode()[-2000:]

    users, items, malformed = expected_counts(recs)
    store = RedisStore(redis_url)
    assert counts_in_store(store, "item", items, ITEM_COUNT) == dict(items)
    assert counts_in_store(store, "user", users, USER_COUNT) == dict(users)
    dead = consume_all(kafka_bootstrap, f"{topic_prefix}dead_letters")
    assert len(dead) == malformed
    feeds = [json.loads(m.value()) for m in consume_all(kafka_bootstrap,
                                                         f"{topic_prefix}feed_updates")]
    check_feed_ids(feeds)
    assert len({f["id"] for f in feeds}) == len(feeds)
