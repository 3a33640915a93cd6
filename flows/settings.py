"""All of Bespoke's settings, in one place (pydantic-settings).

Every field can be set from the environment with the ``BESPOKE_`` prefix, e.g.
``BESPOKE_FEED_SIZE=20``; the two connection settings also honour the conventional
``KAFKA_BOOTSTRAP_SERVERS`` and ``REDIS_URL``. Secrets are ``SecretStr``: they print as
``**********`` and ``safe_dump()`` is what gets logged.

>>> s = Settings(_env_file=None, redis_url="redis://:hunter2@127.0.0.1:6379/0")
>>> "hunter2" in repr(s) or "hunter2" in str(s.safe_dump())
False
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from policies.control_auth import ControlKey

WELL_KNOWN_KEYS = frozenset({"change-me", "changeme", "secret", "demo"})
DEMO_PSEUDONYM_KEY = "bespoke-demo-only-pseudonym-key"  # `python -m flows demo`, never a service


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BESPOKE_", env_file=".env", extra="ignore")

    kafka_bootstrap_servers: str | None = Field(
        None, validation_alias=AliasChoices("BESPOKE_KAFKA_BOOTSTRAP_SERVERS",
                                            "KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"))
    redis_url: SecretStr | None = Field(
        None, validation_alias=AliasChoices("BESPOKE_REDIS_URL", "REDIS_URL", "redis_url"))
    redis_timeout_s: float = Field(2.0, gt=0, le=60, description="deadline of every Redis "
                                   "call (connect, read, write); a failed call degrades the "
                                   "decision, never stops the flow")
    redis_close_wait_s: float = Field(30.0, ge=0, le=3600, description="at the end of a run, "
                                      "how long writes retained during a Redis outage wait "
                                      "for the server before they are reported lost")
    # secure transport (docs/operations.md, "Secure connections"): librdkafka's names
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security.protocol")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="Kafka SASL mechanism (with a SASL protocol)")
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: str | None = Field(None, description="CA certificate (PEM) that "
                                              "signed the brokers' certificates; default: "
                                              "the system's")
    otlp_endpoint: str | None = Field(None, description="OTLP/HTTP collector, e.g. "
                                      "http://127.0.0.1:4318: sampled decisions are exported "
                                      "as traces (connectors.tracing); unset: no traces")
    trace_ratio: float = Field(0.01, ge=0, le=1, description="share of decisions traced, "
                               "chosen by decision id (a replay traces the same ones)")
    log_format: Literal["text", "json"] = Field("text", description="log lines on stderr: "
                                                "text, or one JSON object per line")
    redis_username: str | None = Field(None, description="Redis ACL user")
    redis_password: SecretStr | None = None
    redis_ssl_ca_certs: str | None = Field(None, description="CA certificate (PEM) of a "
                                           "rediss:// server; default: the system's")
    # what ``flows.main.flow_from_env`` runs (under ``python -m bytewax.run``; the CLI
    # takes these as options)
    input: str = Field("kafka", description="'kafka' or comma-separated file paths")
    format: str = Field("native", description="input format (features.formats.FORMATS)")
    output: str = Field("kafka", description="'kafka' or a directory")
    store: str | None = Field(None, description="'memory' or a redis:// URL; default: "
                              "REDIS_URL, else memory")
    tail: bool = Field(True, description="Kafka input: keep waiting for new events")
    topic_prefix: str = "bespoke."
    input_topics: list[str] = ["bespoke.events"]
    topic_partitions: int = Field(4, ge=1, le=1024)
    align_partitions: bool = Field(True, description="merge the input partitions a worker "
                                   "reads by record timestamp (event-time alignment on "
                                   "catch-up; connectors/kafka_source.py)")
    partition_idle_s: float = Field(1.0, gt=0, description="an input partition silent this "
                                    "long no longer holds the others back")
    decision_join: Literal["event_time", "processing_time"] = Field(
        "event_time", description="event_time: a decision reads item facts as of its "
        "trigger's time, held until every input partition has passed it (the same input "
        "gives the same decisions; operators/decision_hold.py); processing_time: it reads "
        "the store as it is (lower latency, not reproducible)")
    decision_lateness_s: float = Field(2.0, ge=0, description="event_time join: how far "
                                       "behind its partition's newest event an input may "
                                       "come and still be seen by the decisions after it; "
                                       "decisions wait this long in event time")
    decision_tick_ms: int = Field(1000, ge=1, description="event_time join: decisions in "
                                  "one tick of event time read the facts as of its end")
    decision_model_delay_s: float = Field(30.0, ge=0.001, le=86_400, description="event_time "
                                          "join: a decision ranks with the learned models "
                                          "as they were this long (event time) before its "
                                          "tick's end, having learned every outcome known "
                                          "by then (the decision waits for the learner)")
    control_topic: str | None = Field(None, description="the only input of control events "
                                      "(policy switches, erasures; one partition); default: "
                                      "<topic_prefix>control")
    control_keys: dict[str, ControlKey] = Field(
        default_factory=dict, description="signing keys of control events, JSON: {key id: "
        "{secret, issuer, actions, not_before_ts, not_after_ts}} (policies.control_auth); "
        "without keys every control event is refused")
    control_replay_window_s: float = Field(86400.0, gt=0, description="a control event older "
                                           "than its key's newest accepted one by more than "
                                           "this is refused (event time)")

    feed_size: int = Field(10, ge=1, le=200)
    session_knn: bool = Field(False, description="session-kNN as a candidate source of the "
                              "feed, and its index folds; off by default: with it "
                              "the demo's taste flip no longer drops the feed's CTR enough "
                              "for its drift alert")
    candidates_scored: int = Field(50, ge=1, le=500, description="ranked candidates judged "
                                                                  "by policy per decision")
    policy_dir: str | None = Field(None, description="policy pack files (*.toml); default: "
                                                      "policies/packs")
    record_archive_dir: str | None = Field(
        None, description="Parquet archive of decision records (default: <output>/archive "
                          "for file outputs; set it for Kafka outputs)")
    policy_active: str | None = Field(None, description="pack@version (or a pack's name: "
                                      "its newest version) active at start")
    user_ttl_s: int = Field(30 * 86400, ge=0)
    item_ttl_s: int = Field(90 * 86400, ge=0)
    feed_ttl_s: int = Field(7 * 86400, ge=0)
    attribution_windows_s: dict[str, float] = Field(
        default_factory=lambda: {"page_view": 1800.0, "click": 1800.0, "add_to_cart": 3600.0,
                                 "order": 86400.0},
        description="per event type, how long after a feed an action on one of its items "
                    "counts as its outcome (event time); the longest closes the negatives")
    attribution_max_negatives: int = Field(5, ge=0, le=100, description="negative examples "
                                           "per feed at most (its first positions)")
    exclude_seen: bool = Field(False, description="feeds leave out the user's recent items "
                               "(the last 10) as well as purchases: for domains where an "
                               "item is consumed once (ratings)")
    ranker_learning: bool = Field(True, description="learn a feed ranker from the attributed "
                                  "examples and rank with it once it has learned enough")
    ranker_publish_every: int = Field(1000, ge=1, le=10_000_000, description="examples "
                                      "between published model versions")
    ranker_min_examples: int = Field(5000, ge=0, description="a model serves once it has "
                                     "learned this many examples (before: the heuristic)")
    ranker_refresh_s: float = Field(5.0, ge=0, le=3600, description="how often a process "
                                    "reads the newest model version from the store")
    offer_bandit: bool = Field(True, description="offers' discounts are chosen by a bandit "
                               "(Thompson sampling for revenue) that learns from the orders "
                               "offers earn; off: every offer carries 10%")
    offer_arms: list[float] = Field(default_factory=lambda: [0.0, 5.0, 10.0, 15.0, 20.0],
                                    min_length=1, max_length=16,
                                    description="the discounts (percent) the bandit chooses "
                                                "from, within the price policy")
    offer_publish_every: int = Field(50, ge=1, le=10_000_000, description="offer outcomes "
                                     "between published bandit versions")
    ranker_ctr_drift: dict[str, float] = Field(
        default_factory=lambda: {"drop": 0.20, "min_drop": 0.02, "min_examples": 10_000,
                                 "confirm": 1000, "window": 1000},
        description="the learner's monitor (agent.drift.RateMonitor) of the share of served "
                    "feed items acted on: a relative and an absolute drop confirmed over "
                    "'confirm' examples after an ADWIN change is a drift_alert (with "
                    "ranker_drift_fallback: the ranker falls back until its loss is back); "
                    "min_examples past the warm-up (the demo's share of positives falls from "
                    "0.55 to 0.37 over its first 10,000 examples as feeds fill; its flip "
                    "takes it from 0.38 to 0.29)")
    offer_conversion_drift: dict[str, float] = Field(
        default_factory=lambda: {"drop": 0.25, "min_drop": 0.02, "min_examples": 200,
                                 "confirm": 200, "window": 200},
        description="the same monitor on the offers' conversion (the offer bandit's)")
    ranker_drift_fallback: bool = Field(False, description="act on the learner's drift "
                                        "alerts (the heuristic ranks until recovery); off: "
                                        "report them only (action 'none')")
    ranker_drift: dict[str, float] = Field(
        default_factory=lambda: {"rise": 0.10, "floor": 0.03, "tolerance": 0.02,
                                 "min_examples": 2000, "min_fallback": 5000, "window": 2000,
                                 "confirm": 2000},
        description="the learner's drift monitor (agent.drift.LossMonitor): excess log-loss "
                    "rise (nats) that sends the ranker to fallback, margin below 0 to return, "
                    "examples before watching, minimum dwell in fallback, recovery window, "
                    "examples that confirm a change")

    allowed_lateness_s: float = Field(3600.0, ge=0, description="per-key, event time")
    dedup_ids: int = Field(10_000, ge=0, le=10_000_000, description="event ids remembered "
                           "per input partition: a repeated one is a dead letter "
                           "('duplicate'), not counted twice; 0 = off (native format only)")
    max_future_s: float = Field(3600.0, ge=0, description="an event more than this after its "
                                "record's time (Kafka record timestamp, file modification "
                                "time) is a dead letter")
    mirror_every_s: float = Field(1.0, ge=0, description="store mirror period per key; 0 = "
                                                         "every event")
    delivery: Literal["batch", "epoch", "pipelined"] = Field(
        "epoch", description="how outputs with I/O (Kafka topics, the Redis store) are "
        "confirmed. batch: each output batch is acknowledged before the flow goes on "
        "(nothing is lost in a crash); epoch: outputs are acknowledged at the end of each "
        "epoch, before it commits (nothing is lost in a crash, no wait per batch); "
        "pipelined: batches are acknowledged while the flow computes the next ones, a "
        "bounded number in flight (lower latency; a crash right "
        "after an epoch commit can lose what was still in flight)")
    tool_cache_s: float = Field(1.0, ge=0, description="how long the agent's tools and the "
                                "policy gate reuse item, co-visitation and category rows "
                                "read from the store (0 = read every time)")
    tool_cache_stale_s: float = Field(1.0, ge=0, description="with a remote store (Redis): "
                                      "a cached row up to this long past tool_cache_s is "
                                      "used at once and read again in the background "
                                      "(stale-while-revalidate); 0 = wait for the store")
    enterprise_url: SecretStr | None = Field(None, description="base URL of the PLM/MES/ERP/"
                                             "pricing APIs (connectors.enterprise; it may "
                                             "carry credentials); unset = the store's tools")
    enterprise_timeout_ms: float = Field(200.0, gt=0, description="hard timeout of each "
                                         "enterprise call")
    enterprise_costs: dict[str, float] = Field(
        {}, description="declared price per call per API family (plm, mes, erp, pricing), "
        "for services that do not report it in X-Call-Cost")
    configuration_window_days: int = Field(21, ge=0, le=3650, description="the longest lead "
                                           "time a configuration may promise (with the MES)")
    idle_evict_s: float | None = Field(None, gt=0, description="drop idle keys' state (wall "
                                                              "clock); the store keeps them")

    state_shards: int = Field(64, ge=1, le=65536, description="state shards per keyed "
                                                             "feature step")
    native_kernels: bool = Field(True, description="the ingest fast path, the item, user "
                                 "and co-visitation folds and the candidate retrieval "
                                 "arithmetic in native code (bespoke_native) when built; "
                                 "False: Python only")
    quality_sample_every: int = Field(10, ge=1, description="monitor 1 in N entities")
    quality_report_every: int = Field(2000, ge=1, description="sampled rows per report")
    psi_alert: dict[str, float] = Field(
        default_factory=lambda: {"default": 0.25},
        description="PSI above which a feature field's drift is a drift_alert (two reports "
                    "in a row; recovered below half): 'default', or '<view>.<field>'")

    metrics_port: int = Field(0, ge=0, le=65535, description="serve Prometheus metrics "
                              "(/metrics) on this port, plus the process id in a cluster "
                              "(0: off)")
    metrics_addr: str = Field("127.0.0.1", description="the metrics endpoint's address "
                              "(0.0.0.0 to let a Prometheus on another host scrape it)")
    input_monitor: dict[str, float] = Field(
        default_factory=dict,
        description="the input's drift monitor (features.input_monitor): event rate, mix of "
                    "types, dead-letter and late shares per bucket of event time against a "
                    "reference; keys as features.input_monitor.DEFAULTS ('bucket_s': 0 "
                    "turns it off)")

    gc_gen0_threshold: int = Field(2_000, ge=0, description="Python GC generation-0 "
                                   "threshold for runs (0 = Python's defaults, no freezing): "
                                   "rarer young collections than Python's 700, yet short "
                                   "(p99 ~2 ms; at 5,000 ~5 ms, at 50,000 ~20 ms)")
    gc_gen1_threshold: int = Field(10, ge=1, description="generation-0 collections per "
                                   "generation-1 one (at 20 with 5,000 above, p99 ~10 ms)")
    gc_freeze_every_s: float = Field(1.0, ge=0, description="freeze what exists this often, "
                                     "so no collection visits the whole state (full ones "
                                     "took ~100 ms at 20,000 users); 0 = never: see "
                                     "flows/gc_tuning.py")
    gil_switch_interval_s: float = Field(0.001, gt=0, description="how long another Python "
                                         "thread (the store writer, the cache refresher) may "
                                         "keep the GIL while a worker waits for it (Python's "
                                         "default: 5 ms, all of it in the decision latency)")

    epoch_interval_s: float | None = Field(
        None, gt=0, description="Bytewax epoch; default 0.1 s, 1 s with a recovery "
        "directory (a snapshot per epoch): decisions held for event time leave as epochs "
        "close, so shorter epochs decide in smaller steps (operators/decision_hold.py)")

    def epoch_s(self) -> float:
        """The epoch length this run uses."""
        if self.epoch_interval_s is not None:
            return self.epoch_interval_s
        return 1.0 if self.recovery_dir else 0.1

    recovery_dir: str | None = None
    progress_every_s: float = 5.0
    pseudonym_key: SecretStr | None = Field(None, description="HMAC key of the users' "
                                            "pseudonyms in decision records, ids and logs "
                                            "(at least 16 characters; required by every "
                                            "decision flow but the demo)")

    def pseudonym_key_bytes(self) -> bytes:
        """The pseudonym key; a missing, well-known or short key refuses to start.

        >>> Settings(_env_file=None, pseudonym_key="change-me").pseudonym_key_bytes()
        Traceback (most recent call last):
        ...
        ValueError: BESPOKE_PSEUDONYM_KEY is the well-known default: set a secret of 16+ characters
        """
        key = self.pseudonym_key.get_secret_value() if self.pseudonym_key else ""
        if not key:
            raise ValueError("BESPOKE_PSEUDONYM_KEY is not set: decisions need a secret of "
                             "16+ characters to pseudonymize users (the demo sets its own)")
        if key in WELL_KNOWN_KEYS:
            raise ValueError("BESPOKE_PSEUDONYM_KEY is the well-known default: set a secret "
                             "of 16+ characters")
        if len(key) < 16:
            raise ValueError("BESPOKE_PSEUDONYM_KEY is shorter than 16 characters")
        return key.encode()

    def kafka_security(self) -> dict[str, str]:
        """librdkafka settings for every Kafka client of the flow (secrets included: hand
        them to clients only, never to a log).

        >>> Settings(_env_file=None).kafka_security()
        {}
        >>> sorted(Settings(_env_file=None, kafka_security_protocol="SASL_SSL",
        ...     kafka_sasl_username="u", kafka_sasl_password="p").kafka_security())
        ['sasl.mechanism', 'sasl.password', 'sasl.username', 'security.protocol']
        """
        if self.kafka_security_protocol == "PLAINTEXT":
            return {}
        out: dict[str, str] = {"security.protocol": str(self.kafka_security_protocol)}
        if self.kafka_security_protocol.startswith("SASL"):
            if not self.kafka_sasl_username or self.kafka_sasl_password is None:
                raise ValueError(f"Kafka {self.kafka_security_protocol} needs "
                                 "BESPOKE_KAFKA_SASL_USERNAME and BESPOKE_KAFKA_SASL_PASSWORD")
            out |= {"sasl.mechanism": self.kafka_sasl_mechanism,
                    "sasl.username": self.kafka_sasl_username,
                    "sasl.password": self.kafka_sasl_password.get_secret_value()}
        if self.kafka_ssl_ca_location:
            out["ssl.ca.location"] = self.kafka_ssl_ca_location
        return out

    def redis_options(self) -> dict[str, str]:
        """redis-py connection options beside the URL (the ACL user, its password, the CA
        of a ``rediss://`` server)."""
        out = {}
        if self.redis_username:
            out["username"] = self.redis_username
        if self.redis_password is not None:
            out["password"] = self.redis_password.get_secret_value()
        if self.redis_ssl_ca_certs:
            out["ssl_ca_certs"] = self.redis_ssl_ca_certs
        return out

    def topic(self, channel: str) -> str:
        return f"{self.topic_prefix}{channel}"

    def control_topic_name(self) -> str:
        return self.control_topic or self.topic("control")

    def safe_dump(self) -> dict:
        """Settings fit for a log line: secrets masked, URL passwords removed."""
        def safe(k: str, v):
            if isinstance(v, SecretStr):
                return "**********"
            if k == "control_keys":  # who may do what, never the secrets
                return {kid: {"issuer": c.issuer, "actions": list(c.actions)}
                        for kid, c in v.items()}
            return v
        return {k: safe(k, getattr(self, k)) for k in type(self).model_fields}
