"""The main Bespoke dataflow: event → validate → features → candidates → score → decision → sinks.

Build it with ``build_flow(RunConfig(...))`` and run it with ``run(...)``, or from the
environment under Bytewax's own runner for a multi-process cluster::

    BESPOKE_INPUT=kafka BESPOKE_OUTPUT=kafka BESPOKE_STORE=redis://127.0.0.1:6379/0 \\
    python -m bytewax.run "flows.main:flow_from_env()" -w 2 -i 0 -a "hostA:2101;hostB:2101"
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.recovery import RecoveryConfig, init_db_dir
from pydantic import BaseModel, Field

from agent.attribution import Attribution
from agent.decide import DecisionFold
from agent.learner import FEED_RANKER, FeedLearner
from agent.model_slot import ModelSlot
from agent.offer_bandit import OFFER_BANDIT, OfferLearner, parse_bandit
from agent.policy_gate import PolicyGate
from agent.store_tools import plm_configurator_tool
from agent.tools import Tool
from connectors.cached_store import CachedRows
from connectors.delivery import delivery
from connectors.enterprise import EnterpriseClient, enterprise_tools
from connectors.epoch_sink import key_by_worker
from connectors.file_sink import JsonlDirSink
from connectors.file_source import FileSource
from connectors.kafka_source import kafka_raw_input
from connectors.linger import Linger
from connectors.metrics import enable as enable_metrics
from connectors.parquet_sink import ParquetFeatureSink
from connectors.policy_packs import read_pack_files
from connectors.record_archive import RecordArchiveSink
from connectors.store_sink import is_remote, store_factory
from connectors.tracing import DecisionTracer, close_all
from features.channels import DEAD_LETTERS, FEATURE_QUALITY, LATE_EVENTS
from features.channels import NAMES as CHANNEL_NAMES
from features.definitions import REGISTRY
from features.events import FeatureQuality, LateEvent, Outgoing, outgoing
from features.facts import DerivedFacts, FactTable
from features.formats import FORMATS
from features.input_monitor import DEFAULTS as INPUT_MONITOR_DEFAULTS
from features.store import RowReader
from features.validate import RawRecord
from flows.gc_tuning import FreezeEvery, set_thresholds
from flows.settings import Settings
from operators.candidates import candidates
from operators.chunks import chunk_map, flatten
from operators.control import ControlStreams, control_plane
from operators.decision import feed_decision
from operators.decision_hold import (
    HOLD_SHARDS,
    HoldConfig,
    decision_hold,
    drained,
    facts_step,
    hold_progress,
)
from operators.features import FeatureConfig, feature_pipeline
from operators.input_monitor import input_drift
from operators.progress import progress
from operators.quality import feature_quality
from operators.score import score
from operators.sharded_fold import on_snapshot
from operators.taps import tap
from operators.validate import validate
from policies.privacy import decision_id, pseudonymize


class RunConfig(BaseModel):
    """What one run reads, writes and where features go."""

    inputs: list[str] = Field(description="'kafka' or file paths")
    format: str = "native"
    output: str = Field(description="'kafka' or a directory")
    store: str = "memory"
    tail: bool = False  # Kafka: keep waiting for new events at the end of the topics
    decisions: bool = True  # False: the feature flow alone (features, late events, DLQ)
    features_parquet: str | None = None  # replay: also write every feature row to Parquet
    controls: list[str] = Field(default_factory=list, description="files of signed control "
                                "events (with Kafka input the control topic is read)")
    settings: Settings = Field(default_factory=Settings)

    def model_post_init(self, _ctx) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}")
        if self.decisions:
            self.settings.pseudonym_key_bytes()  # refuse to start without a real key
        uses_kafka = self.inputs == ["kafka"] or self.output == "kafka"
        if uses_kafka and not self.settings.kafka_bootstrap_servers:
            raise ValueError("kafka input/output needs KAFKA_BOOTSTRAP_SERVERS")


def build_flow(cfg: RunConfig, flow_id: str = "bespoke", processes: int = 1) -> Dataflow:
    """``processes``: how many processes run the flow (the event-time join of decisions and
    facts needs every item fact in one process: with more it falls back to store reads)."""
    s = cfg.settings
    flow = Dataflow(flow_id)
    event_time = cfg.decisions and s.decision_join == "event_time"
    if event_time and processes > 1:
        print("[bespoke] decision_join=event_time needs one process; this cluster reads item "
              "facts from the store as they are (decisions are not reproducible)",
              file=sys.stderr)
        event_time = False
    lateness_ms = int(s.decision_lateness_s * 1000)
    # event time: the process's fact table; with learners, decisions wait for the models
    # they read, and a finite input lingers at its end until they are all made
    table = FactTable() if event_time else None
    learns = s.ranker_learning or s.offer_bandit
    delay_ms = max(1, int(s.decision_model_delay_s * 1000)) if table and learns else None
    linger = None
    if table is not None and delay_ms is not None:
        table.read_back = delay_ms
        linger = Linger(partial(drained, table, HOLD_SHARDS),
                        partial(hold_progress, table))
    dedup = s.dedup_ids if cfg.format == "native" else 0  # datasets' ids are positions
    control_raw = None
    brokers, kafka_sec = s.kafka_bootstrap_servers or "", s.kafka_security()
    if cfg.inputs == ["kafka"] or cfg.output == "kafka":
        from connectors.kafka_admin import check_kafka

        check_kafka(brokers, kafka_sec)  # wrong credentials: a clear error now, no retry loop
    if is_remote(cfg.store):
        from connectors.redis_store import check_redis

        check_redis(cfg.store, s.redis_timeout_s, **s.redis_options())
    if cfg.inputs == ["kafka"]:
        from connectors.kafka_admin import ensure_topics

        ctl_topic = s.control_topic_name()
        raw = kafka_raw_input("in", flow, brokers, s.input_topics,
                              tail=cfg.tail, align=s.align_partitions,
                              partition_idle_s=s.partition_idle_s, dedup_ids=dedup,
                              extra_config=kafka_sec, linger=linger)
        # the control topic has an input step of its own, asked as often as the events'
        # (1 ms): an input step that sleeps longer when idle holds back every epoch's close
        # downstream of it (an idle wait of 50 ms gave a p99 of 360-410 ms, 1 ms 19-57 ms)
        # read even when nobody has written to it yet
        ensure_topics(brokers, {ctl_topic: 1}, extra=kafka_sec)
        control_raw = kafka_raw_input("control_in", flow, brokers, [ctl_topic], tail=cfg.tail,
                                      extra_config=kafka_sec)
    else:
        raw = op.input("in", flow, FileSource(cfg.inputs, dedup_ids=dedup, linger=linger))
    sinks = delivery(s.delivery)
    sinks.before_sinks(raw)
    raw = progress("progress", raw, s.progress_every_s)

    # inside the flow, steps pass chunks (lists of items): see operators.chunks
    monitor = {**INPUT_MONITOR_DEFAULTS, **s.input_monitor}
    bucket_ms = int(monitor["bucket_s"] * 1000)
    meter = enable_metrics() if s.metrics_port else None  # served by run()/flow_from_env()
    on_snapshot(meter.observe_snapshot if meter is not None else None)
    valid = validate("validate", raw, cfg.format, s.native_kernels,
                     max_future_ms=int(s.max_future_s * 1000),
                     count_bucket_ms=bucket_ms or (60_000 if meter else 0),
                     clock_lateness_ms=lateness_ms if event_time else None)
    ctl = control_input(flow, cfg, control_raw)
    user_in, dead, outs = valid.user_inputs, valid.dead_letters, []
    if ctl is not None:
        user_in = op.merge("user_inputs", user_in, ctl.erasures)
        dead = op.merge("dead_letters", dead, ctl.dead_letters)
        outs.append(ctl.audit)
    feats = feature_pipeline("features", valid.item_inputs, user_in,
                             feature_config(cfg, event_time))
    dlq = chunk_map("dlq_out", dead,
                    lambda d: outgoing(DEAD_LETTERS.name, f"{d.source}:{d.partition}", d))
    late = chunk_map("late_out", feats.late, late_event_out(
        s.pseudonym_key_bytes() if s.pseudonym_key else None))
    quality = chunk_map("quality_out", feature_quality("quality", feats.store_ops, REGISTRY,
                                                       s.quality_sample_every,
                                                       s.quality_report_every,
                                                       snapshots=s.recovery_dir is not None,
                                                       psi_alert=s.psi_alert),
                        quality_out)
    outs, store_streams = [*outs, dlq, late, quality], [feats.store_ops]
    if valid.counts is not None and bucket_ms:
        outs.append(input_drift("input_drift", valid.counts, feats.late, monitor))
    stores = store_factory(cfg.store, s.redis_timeout_s,  # reads: a short deadline
                           s.redis_options())
    # writes: a large pipeline (an epoch's writes after a backlog) can take seconds; a
    # deadline that short made them fail while Redis was up
    sink_stores = store_factory(cfg.store, max(30.0, s.redis_timeout_s), s.redis_options(),
                                s.redis_close_wait_s)
    if cfg.decisions:
        triggers, tick = feats.decision_inputs, None
        if table is not None:  # facts as of each trigger's time (operators.decision_hold)
            gate = PolicyGate(read_pack_files(s.policy_dir), s.policy_active, lambda: table,
                              native=s.native_kernels,
                              facts_factory=lambda _: DerivedFacts(table,
                                                                   PolicyGate.facts_of),
                              extra_tools=enterprise_factory(s))
            assert valid.clock is not None
            tick = s.decision_tick_ms
            triggers = decision_hold(
                "hold", triggers, valid.clock,
                facts_step("facts", feats.store_ops, table, s.state_shards,
                           snapshots=s.recovery_dir is not None),
                table, HoldConfig(lateness_ms, tick, input_partitions(cfg),
                                  model_delay_ms=delay_ms),
                snapshots=s.recovery_dir is not None)
        else:
            stale_s = s.tool_cache_stale_s if is_remote(cfg.store) else 0.0
            gate = PolicyGate(read_pack_files(s.policy_dir), s.policy_active,
                              lambda: CachedRows(stores(), s.tool_cache_s, max_keys=200_000,
                                                 stale_s=stale_s),
                              native=s.native_kernels,
                              facts_factory=lambda rows: CachedRows(
                                  rows, s.tool_cache_s, max_keys=200_000,
                                  derive=PolicyGate.facts_of),
                              extra_tools=enterprise_factory(s))
        cands = candidates("candidates", triggers, lambda: gate.runtime,
                           s.candidates_scored, native=s.native_kernels,
                           prefetch=None if event_time else gate,
                           lists=s.ranker_learning, exclude_seen=s.exclude_seen,
                           tick_ms=tick, knn=s.session_knn)
        ranked = score("score", cands, s.candidates_scored)
        # event time: the models are read from the fact table, where the learners' rows
        # land as they publish them (not when the store sink's epoch ends)
        model_rows = (lambda: table) if table is not None else stores
        models = ModelSlot(FEED_RANKER, model_rows, s.ranker_refresh_s,
                           s.ranker_min_examples, delay_ms=delay_ms,
                           tick_ms=s.decision_tick_ms) if s.ranker_learning else None
        bandit = ModelSlot(OFFER_BANDIT, model_rows, s.ranker_refresh_s,
                           parse=parse_bandit, delay_ms=delay_ms,
                           tick_ms=s.decision_tick_ms) if s.offer_bandit else None
        fold = DecisionFold(gate, s.feed_size, s.feed_ttl_s, s.pseudonym_key_bytes(),
                            Attribution({k: int(v * 1000)
                                         for k, v in s.attribution_windows_s.items()},
                                        max_negatives=s.attribution_max_negatives),
                            models, bandit, tuple(s.offer_arms),
                            window_days=s.configuration_window_days)
        feed = feed_decision("decision", ranked, ctl.accepted if ctl else None, fold,
                             s.state_shards, tick_ms=tick, facts=table,
                             snapshots=s.recovery_dir is not None,
                             learner=FeedLearner(s.ranker_publish_every,
                                                 drift=s.ranker_drift,
                                                 fallback=s.ranker_drift_fallback,
                                                 ctr_drift=s.ranker_ctr_drift)
                             if s.ranker_learning else None,
                             bandit=OfferLearner(tuple(s.offer_arms), s.offer_publish_every,
                                                 s.offer_conversion_drift)
                             if s.offer_bandit else None)
        outs.append(feed.outgoing)
        store_streams.append(feed.store_ops)

    out_chunks = op.merge("outgoing_chunks", *outs)
    if meter is not None:  # counted per batch, off the data path (connectors.metrics)
        tap("metrics_in", raw, meter.observe_raw)
        if valid.counts is not None:
            tap("metrics_events", valid.counts, meter.observe_batch_counts)
        tap("metrics_dead", dead, meter.observe_dead_letters, chunks=True)
        tap("metrics_late", feats.late, meter.observe_late, chunks=True)
        tap("metrics_out", out_chunks, meter.observe_outgoing, chunks=True)
    if s.otlp_endpoint or s.log_format == "json":  # traces and event log lines, off the path
        tracer = DecisionTracer(s.otlp_endpoint, s.trace_ratio)
        tap("traces_and_logs", out_chunks, tracer.observe_outgoing, chunks=True)
    flat: list[Stream] = []

    def items() -> Stream:
        """The outgoing events one by one, for the sinks that take them (built once)."""
        if not flat:
            flat.append(flatten("outgoing", out_chunks))
        return flat[0]

    archive = s.record_archive_dir or (
        None if cfg.output == "kafka" else str(Path(cfg.output) / "archive"))
    if cfg.decisions and archive:
        op.output("record_archive", items(), RecordArchiveSink(archive, native=s.native_kernels))
    if cfg.output == "kafka":
        sinks.to_kafka("sink", out_chunks, items, brokers,
                       {ch: s.topic(ch) for ch in CHANNEL_NAMES}, kafka_sec)
    else:
        op.output("sink", key_by_worker("sink_key", items()),
                  JsonlDirSink(cfg.output, recovered=s.recovery_dir is not None))
    sinks.to_store("store", op.merge("store_ops_chunks", *store_streams), sink_stores)
    if cfg.features_parquet:
        op.output("features_parquet", flatten("features_rows", feats.store_ops),
                  ParquetFeatureSink(cfg.features_parquet, REGISTRY))
    return flow


def input_partitions(cfg: RunConfig) -> tuple[str, ...]:
    """The input partitions the flow's clock waits for (``source:partition``)."""
    s = cfg.settings
    if cfg.inputs != ["kafka"]:
        return tuple(f"{Path(p).name}:0" for p in cfg.inputs)
    from connectors.kafka_admin import partitions_of

    return tuple(partitions_of(s.kafka_bootstrap_servers or "", s.input_topics,
                               extra=s.kafka_security()))


def enterprise_factory(s: Settings) -> Callable[[RowReader], list[Tool]] | None:
    """The enterprise adapters and the PLM configurator, when an enterprise URL is set."""
    if s.enterprise_url is None or not s.enterprise_url.get_secret_value():
        return None
    url, timeout = s.enterprise_url.get_secret_value(), s.enterprise_timeout_ms

    def build(rows: RowReader) -> list[Tool]:
        return [*enterprise_tools(EnterpriseClient(url, timeout), timeout, s.enterprise_costs),
                plm_configurator_tool(rows)]
    return build


def quality_out(q: FeatureQuality | Outgoing) -> Outgoing:
    """A quality record as it goes out (the step's drift alerts are out already)."""
    return q if isinstance(q, Outgoing) else outgoing(FEATURE_QUALITY.name, q.view, q)


def late_event_out(pseudonym_key: bytes | None):
    """Late events as they go out: a user's or session's is named by the user's pseudonym
    (its id too), never by the raw id (feature-only flows without a key: by an unkeyed hash,
    which hides the id from a reader but not from a guess)."""
    def out(e: LateEvent):
        if e.entity != "item":
            ref = pseudonymize(e.key, pseudonym_key or b"bespoke-late-events")
            e = e.model_copy(update={"key": ref,
                                     "id": decision_id(f"late:{e.entity}", ref, e.event_id)})
        return outgoing(LATE_EVENTS.name, e.key, e)
    return out


def control_input(flow: Dataflow, cfg: RunConfig,
                  raw: Stream[RawRecord] | None) -> ControlStreams | None:
    """The control plane: the control topic's records with Kafka input, else the control
    files."""
    s = cfg.settings
    if raw is None and cfg.controls:
        raw = op.input("control_in", flow, FileSource(cfg.controls))
    if raw is None:
        return None
    return control_plane("control", raw, s.control_keys,
                         int(s.control_replay_window_s * 1000),
                         s.pseudonym_key_bytes() if s.pseudonym_key else b"")


def feature_config(cfg: RunConfig, event_time: bool = False) -> FeatureConfig:
    s = cfg.settings
    return FeatureConfig(allowed_lateness_ms=int(s.allowed_lateness_s * 1000),
                         mirror_every_s=s.mirror_every_s, idle_evict_s=s.idle_evict_s,
                         decision_inputs=cfg.decisions, shards=s.state_shards,
                         snapshots=s.recovery_dir is not None, native=s.native_kernels,
                         remirror=s.recovery_dir is not None and not is_remote(cfg.store),
                         facts_every_event=event_time, session_index=s.session_knn)


def recovery_config(recovery_dir: str | None, partitions: int,
                    process_id: int | None = None) -> RecoveryConfig | None:
    """Recovery partitions are created on first use (one per worker of the first run) by
    process 0; the other processes of a cluster wait for them to appear."""
    if not recovery_dir:
        return None
    d = Path(recovery_dir)
    d.mkdir(parents=True, exist_ok=True)
    ready = d / ".ready"
    if not process_id:
        if not any(d.glob("part-*.sqlite3")):
            tmp = d / f".init-{os.getpid()}"
            tmp.mkdir()
            init_db_dir(tmp, partitions)
            for f in sorted(tmp.iterdir()):
                f.rename(d / f.name)
            tmp.rmdir()
        ready.touch()
    else:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no recovery partitions appeared in {d}")
            time.sleep(0.1)
    return RecoveryConfig(d)


def refuse_used_output(cfg: RunConfig) -> None:
    """Output files are appended to (a resumed run goes on writing them), so a fresh run
    into a directory that holds another run's files would mix the two: refused."""
    if cfg.output == "kafka" or not Path(cfg.output).is_dir():
        return
    rec = cfg.settings.recovery_dir
    resuming = bool(rec) and any(Path(rec).glob("part-*.sqlite3"))  # type: ignore[arg-type]
    used = [p.name for p in Path(cfg.output).iterdir()
            if p.is_dir() and any(p.glob("part-*.jsonl"))]
    if used and not resuming:
        raise ValueError(f"output directory {cfg.output} already holds a run's files "
                         f"({', '.join(sorted(used)[:3])}...): give an empty or new directory "
                         f"(a run resumed from its recovery directory goes on writing there)")


def run(cfg: RunConfig, workers: int = 1, process_id: int | None = None,
        addresses: list[str] | None = None) -> None:
    """Run the flow to completion (finite inputs) in this process."""
    from bytewax._bytewax import cli_main

    s = cfg.settings
    procs = len(addresses) if addresses else 1
    if not process_id:
        refuse_used_output(cfg)
    if s.metrics_port:
        enable_metrics(s.metrics_port + (process_id or 0), s.metrics_addr)
    flow = build_flow(cfg, processes=procs)
    freezer = None
    switch = sys.getswitchinterval()
    sys.setswitchinterval(s.gil_switch_interval_s)
    if s.gc_gen0_threshold:
        # many small, long-lived state objects: short young collections, and no collection
        # that visits the whole state (flows/gc_tuning.py)
        set_thresholds(s.gc_gen0_threshold, s.gc_gen1_threshold)
        if s.gc_freeze_every_s:
            freezer = FreezeEvery(s.gc_freeze_every_s).start()
    try:
        cli_main(flow, workers_per_process=workers, process_id=process_id,
                 addresses=addresses, epoch_interval=timedelta(seconds=s.epoch_s()),
                 recovery_config=recovery_config(s.recovery_dir, workers * procs, process_id))
    finally:
        sys.setswitchinterval(switch)
        close_all()  # the last sampled decisions' spans
        if freezer is not None:
            freezer.stop()
        elif s.gc_gen0_threshold:
            gc.unfreeze()  # what the run leaves behind can be collected


def flow_from_env() -> Dataflow:
    """The flow described by ``BESPOKE_INPUT``/``_FORMAT``/``_OUTPUT``/``_STORE``/``_TAIL``
    (``flows.settings``), for ``python -m bytewax.run`` (which then owns workers, processes
    and recovery flags)."""
    s = Settings()
    if s.metrics_port:  # one endpoint per process: the port plus BYTEWAX_PROCESS_ID
        enable_metrics(s.metrics_port + int(os.environ.get("BYTEWAX_PROCESS_ID") or 0),
                       s.metrics_addr)
    store = s.store or (s.redis_url.get_secret_value() if s.redis_url else "memory")
    return build_flow(RunConfig(inputs=s.input.split(","), format=s.format, output=s.output,
                                store=store, tail=s.tail, settings=s),
                      processes=_processes_from_args())


def _processes_from_args() -> int:
    """How many processes ``python -m bytewax.run`` was asked for (``-a``/``--addresses``
    or ``BYTEWAX_ADDRESSES``, ``;``-separated; a hostfile counts its lines)."""
    args = sys.argv
    addresses = os.environ.get("BYTEWAX_ADDRESSES", "")
    for i, a in enumerate(args[:-1]):
        if a in ("-a", "--addresses"):
            addresses = args[i + 1]
    hostfile = os.environ.get("BYTEWAX_HOSTFILE_PATH")
    if hostfile and not addresses and Path(hostfile).is_file():
        return max(1, sum(1 for line in Path(hostfile).read_text().splitlines() if line.strip()))
    return max(1, len([a for a in addresses.split(";") if a.strip()]))
