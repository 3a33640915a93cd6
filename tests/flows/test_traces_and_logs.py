"""Traces and logs: a flow with BESPOKE_OTLP_ENDPOINT exports the sampled decisions as
OTLP/HTTP traces to a receiver on loopback (decoded with the OTLP protobufs), each one a
root span with the decision id and pseudonymous user and a child span per tool call; the
sample is chosen by decision id; JSON log lines carry no raw user id."""

from __future__ import annotations

import http.server
import json
import logging
import threading
import uuid
from collections import defaultdict

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from connectors.file_sink import read_channel
from connectors.generator import GenConfig, Generator, write_jsonl
from connectors.memory_store import MemoryStore
from connectors.tracing import JsonLogFormatter, sampled
from flows.main import RunConfig, run
from flows.settings import Settings


class _Receiver(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                with receiver.lock:
                    for rs in req.resource_spans:
                        for ss in rs.scope_spans:
                            receiver.spans.extend(ss.spans)
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


def _attrs(span) -> dict:
    out = {}
    for kv in span.attributes:
        v = kv.value
        out[kv.key] = (v.string_value if v.HasField("string_value") else
                       v.double_value if v.HasField("double_value") else
                       [x.string_value for x in v.array_value.values])
    return out


def test_sampled_decisions_become_traces_at_a_real_otlp_receiver(tmp_path, caplog):
    recs = list(Generator(GenConfig(seed=61, users=100, items=60, events=2500)).records())
    write_jsonl(str(tmp_path / "events.jsonl"), iter(recs))
    receiver = _Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    ratio, name = 0.25, uuid.uuid4().hex
    s = Settings(_env_file=None, progress_every_s=0, trace_ratio=ratio,
                 otlp_endpoint=f"http://127.0.0.1:{receiver.server_address[1]}",
                 log_format="json")
    try:
        with caplog.at_level(logging.INFO, logger="bespoke.events"):
            run(RunConfig(inputs=[str(tmp_path / "events.jsonl")], output=str(tmp_path / "out"),
                          store=f"memory://{name}", settings=s))
    finally:
        receiver.shutdown()
        MemoryStore.drop(name)
    records = [json.loads(b) for b in read_channel(tmp_path / "out", "decision_records")]
    chosen = {r["decision_id"]: r for r in records if sampled(r["decision_id"], ratio)}
    assert 0 < len(chosen) < len(records)
    roots = {sp.span_id: sp for sp in receiver.spans if not sp.parent_span_id}
    children = defaultdict(list)
    for sp in receiver.spans:
        if sp.parent_span_id:
            children[sp.parent_span_id].append(sp)
    traced = {_attrs(sp)["bespoke.decision_id"]: sp for sp in roots.values()}
    assert set(traced) == set(chosen)  # exactly the sample: no more, no fewer
    raw_users = {r.key for r in recs if r.key}
    for did, root in traced.items():
        rec, a = chosen[did], _attrs(root)
        assert root.name == f"decision {rec['decision_type']}"
        assert a["bespoke.user_ref"] == rec["user_ref"]
        assert not raw_users & {str(v) for v in a.values()}
        tools = children[root.span_id]
        assert [sp.name for sp in sorted(tools, key=lambda x: x.start_time_unix_nano)] == [
            f"tool {c['tool']}" for c in rec["tool_calls"]]
        for sp in tools:
            assert sp.trace_id == root.trace_id
            assert root.start_time_unix_nano <= sp.start_time_unix_nano
            assert sp.end_time_unix_nano <= root.end_time_unix_nano
        denials = [e for e in root.events if e.name == "policy verdict"]
        assert len(denials) == len(rec["verdicts"])
    # policy and model changes were logged, as JSON, with no raw user id
    lines = [JsonLogFormatter().format(r) for r in caplog.records]
    docs = [json.loads(x) for x in lines]
    assert any(d["msg"] == "model version" and d["channel"] == "model_changes" for d in docs)
    assert not any(u in x for u in raw_users for x in lines)


def test_without_an_endpoint_nothing_is_traced(tmp_path):
    from connectors.tracing import DecisionTracer

    t = DecisionTracer(None, 1.0, log_events=False)
    t.observe_outgoing([])  # no exporter, no error
    t.close()
    assert t._tracer is None
