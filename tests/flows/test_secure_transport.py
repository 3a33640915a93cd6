"""Encrypted, authenticated connections: the flow runs end to end over the real broker's
TLS + SASL/SCRAM listener and a Redis that takes only TLS and an ACL user (certificates made
on loopback by the test session); wrong credentials fail fast with a clear message that
holds no secret; a password on the command line is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from connectors.generator import GenConfig, Generator
from connectors.kafka_admin import KafkaUnreachable, check_kafka, ensure_topics, produce_all
from connectors.redis_store import RedisRefused
from features.channels import NAMES as CHANNELS
from flows.main import RunConfig, run
from flows.settings import Settings
from scripts.kafka_util import consume_all
from scripts.servers import SECURE_LISTENERS, redis_tls_acl_process

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def secure_kafka(kafka_bootstrap):
    if kafka_bootstrap not in SECURE_LISTENERS:
        pytest.skip("KAFKA_BOOTSTRAP_SERVERS points at a broker this suite did not start "
                    "(its TLS + SASL listener is made by scripts/kafka-broker.sh)")
    return SECURE_LISTENERS[kafka_bootstrap]


@pytest.fixture(scope="module")
def secure_redis(tmp_path_factory):
    with redis_tls_acl_process(tmp_path_factory.mktemp("redis-tls")) as (url, ca, user, pw):
        yield {"url": url, "ca": ca, "user": user, "password": pw}


def _settings(k: dict, r: dict, prefix: str, tmp_path: Path, **over) -> Settings:
    fields = dict(_env_file=None, kafka_bootstrap_servers=k["bootstrap"],
                  kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256",
                  kafka_sasl_username=k["user"], kafka_sasl_password=k["password"],
                  kafka_ssl_ca_location=k["ca"], redis_username=r["user"],
                  redis_password=r["password"], redis_ssl_ca_certs=r["ca"],
                  topic_prefix=prefix, input_topics=[f"{prefix}events"], topic_partitions=2,
                  progress_every_s=0, epoch_interval_s=0.5,
                  record_archive_dir=str(tmp_path / "archive"))
    return Settings(**(fields | over))


@pytest.mark.kafka
@pytest.mark.redis
def test_the_flow_runs_over_tls_sasl_kafka_and_tls_acl_redis(secure_kafka, secure_redis,
                                                             topic_prefix, tmp_path):
    s = _settings(secure_kafka, secure_redis, topic_prefix, tmp_path)
    sec = s.kafka_security()
    recs = list(Generator(GenConfig(seed=51, users=120, items=60, events=2500,
                                    malformed_rate=0.02)).records())
    ensure_topics(s.kafka_bootstrap_servers, {s.input_topics[0]: 2}
                  | {s.topic(ch): 2 for ch in CHANNELS}, extra=sec)
    produce_all(s.kafka_bootstrap_servers, s.input_topics[0],
                ((r.key, r.value) for r in recs), extra=sec)
    run(RunConfig(inputs=["kafka"], output="kafka", store=secure_redis["url"], tail=False,
                  settings=s))

    def read(ch: str) -> list:
        return consume_all(s.kafka_bootstrap_servers, s.topic(ch), extra=sec)

    records = [json.loads(m.value()) for m in read("decision_records")]
    feeds = read("feed_updates")
    assert records and feeds
    assert len(read("dead_letters")) == sum(r.malformed for r in recs) > 0
    # the store was written through TLS as the ACL user
    client = redis.Redis.from_url(secure_redis["url"], username=secure_redis["user"],
                                  password=secure_redis["password"],
                                  ssl_ca_certs=secure_redis["ca"])
    assert client.dbsize() > 0
    client.close()
    # nothing reached the plaintext side: the secure listener's topics are the same broker's,
    # but a client without credentials cannot read them through it
    with pytest.raises(KafkaUnreachable):
        check_kafka(s.kafka_bootstrap_servers, {"security.protocol": "SSL",
                                                "ssl.ca.location": secure_kafka["ca"]},
                    timeout_s=5)


@pytest.mark.kafka
def test_wrong_kafka_credentials_fail_fast_without_the_secret(secure_kafka, topic_prefix,
                                                             tmp_path):
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": secure_kafka["bootstrap"],
           "BESPOKE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "BESPOKE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
           "BESPOKE_KAFKA_SASL_USERNAME": secure_kafka["user"],
           "BESPOKE_KAFKA_SASL_PASSWORD": "not-the-password-7f3a",
           "BESPOKE_KAFKA_SSL_CA_LOCATION": secure_kafka["ca"],
           "BESPOKE_TOPIC_PREFIX": topic_prefix}
    env.pop("REDIS_URL", None)
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "flows", "run", "--input", "kafka",
                           "--output", str(tmp_path / "out"), "--store", "memory"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "refusing to start: Kafka at" in done.stderr and "refused" in done.stderr
    assert "SASL authentication" in done.stderr or "Authentication failed" in done.stderr
    assert "not-the-password-7f3a" not in done.stdout + done.stderr
    assert time.monotonic() - t0 < 60


@pytest.mark.redis
def test_wrong_redis_credentials_fail_fast(secure_redis, tmp_path):
    s = Settings(_env_file=None, redis_username=secure_redis["user"],
                 redis_password="not-the-password-9c1e", redis_ssl_ca_certs=secure_redis["ca"],
                 progress_every_s=0)
    (tmp_path / "in.jsonl").write_text("")
    with pytest.raises(RedisRefused) as e:
        run(RunConfig(inputs=[str(tmp_path / "in.jsonl")], output=str(tmp_path / "out"),
                      store=secure_redis["url"], settings=s))
    assert "refused user bespoke" in str(e.value)
    assert "not-the-password-9c1e" not in str(e.value)
    # without the CA the certificate is not trusted: a TLS error, not an outage
    s = Settings(_env_file=None, redis_username=secure_redis["user"],
                 redis_password=secure_redis["password"], progress_every_s=0)
    with pytest.raises(RedisRefused, match="TLS failed"):
        run(RunConfig(inputs=[str(tmp_path / "in.jsonl")], output=str(tmp_path / "out2"),
                      store=secure_redis["url"], settings=s))


def test_a_password_on_the_command_line_is_refused(tmp_path):
    done = subprocess.run([sys.executable, "-m", "flows", "run", "--input",
                           str(tmp_path / "none.jsonl"), "--output", str(tmp_path / "out"),
                           "--store", "redis://app:s3cret-on-cli@127.0.0.1:1/0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "--store carries a password" in done.stderr
    assert "s3cret-on-cli" not in done.stderr


def test_secrets_of_secure_transport_are_never_dumped():
    s = Settings(_env_file=None, kafka_security_protocol="SASL_SSL", kafka_sasl_username="u",
                 kafka_sasl_password="kafka-pw-1", redis_password="redis-pw-2")
    dumped = json.dumps(s.safe_dump(), default=str) + repr(s)
    assert "kafka-pw-1" not in dumped and "redis-pw-2" not in dumped
    assert s.kafka_security()["sasl.password"] == "kafka-pw-1"
    with pytest.raises(ValueError, match="SASL_PASSWORD"):
        Settings(_env_file=None, kafka_security_protocol="SASL_SSL",
                 kafka_sasl_username="u").kafka_security()
