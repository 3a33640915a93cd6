"""Policy in the running flow: control events switch packs, refusals are logged, decisions
carry pseudonymized records, and erasure purges a user's stored traces."""

import json
import uuid

import pytest

from connectors.file_sink import read_channel
from connectors.generator import GenConfig, Generator
from connectors.memory_store import MemoryStore
from connectors.policy_packs import DEFAULT_DIR
from features.events import DecisionRecord, FeedUpdate, PolicyChange
from flows.main import RunConfig, run
from flows.settings import Settings

STRICT = '''pack = "default"
version = "strict-1"
[[rules]]
id = "no-bikes"
type = "compliance"
priority = 99
params = { blocked_categories = ["bikes"] }
[[rules]]
id = "stock"
type = "stock"
params = { min_available = 1 }
'''


def _control(event_id, ts, action, **kw):
    return json.dumps({"type": "control", "event_id": event_id, "ts": ts, "action": action,
                       "issued_by": "test", **kw}).encode()


@pytest.fixture(scope="module")
def policy_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("policy")
    packs = d / "packs"
    packs.mkdir()
    (packs / "default.toml").write_text((DEFAULT_DIR / "default.toml").read_text())
    (packs / "strict.toml").write_text(STRICT)
    (packs / "broken.toml").write_text('pack = "default"\nversion = "broken-1"\n[[rules]]\n'
                                       'id = "x"\ntype = "stock"\n'
                                       'params = { min_available = -5 }\n')
    recs = list(Generator(GenConfig(seed=4, users=200, items=120, events=6000,
                                    malformed_rate=0.0, shift_at=1.0)).records())
    lines = [r.value for r in recs]
    half = len(lines) // 2
    ts_half = json.loads(lines[half])["ts"]
    erased = json.loads(next(v for v in lines[:half] if b'"page_view"' in v))["user_id"]
    lines = (lines[:half]
             + [_control("c1", ts_half, "switch_policy", version="strict-1"),
                _control("c2", ts_half, "switch_policy", version="broken-1"),
                _control("c3", ts_half, "shadow_policy", version="2026.11.1")]
             + lines[half:]
             + [_control("c4", 2 * ts_half, "erase_user", user_id=erased)])
    src = d / "events.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    name = uuid.uuid4().hex
    run(RunConfig(inputs=[str(src)], output=str(d / "out"), store=f"memory://{name}",
                  settings=Settings(_env_file=None, progress_every_s=0, policy_dir=str(packs),
                                    policy_active="default@2026.11.1",
                                    pseudonym_key="test-key-of-16-chars+")))
    catalog = {json.loads(r.value)["sku"]: json.loads(r.value)["category_path"][0]
               for r in recs if r.type == "catalog"}
    line_of = {json.loads(v)["event_id"]: i for i, v in enumerate(lines)}
    return d / "out", MemoryStore.shared(name), catalog, (half, line_of), erased, recs


def test_control_events_switch_packs_and_every_change_is_logged_once(policy_run):
    out, _, _, _, _, _ = policy_run
    changes = [json.loads(b) for b in read_channel(out, "policy_changes")]
    got = [(c["action"], c.get("pack"), c["ok"]) for c in changes]
    assert ("switch_policy", "default@strict-1", True) in got
    assert ("register", None, False) in got  # the broken pack: refused with file and line
    refused = next(c for c in changes if c["action"] == "register")
    assert refused["detail"].startswith("broken.toml:3: rule 'x'")
    assert ("switch_policy", "broken-1", False) in got  # unknown version: not activated
    assert ("shadow_policy", "default@2026.11.1", True) in got
    assert len(changes) == len({c["id"] for c in changes}) == 4  # once, not once per shard


def test_feeds_follow_the_active_pack(policy_run):
    """A control event takes effect at each decision shard when it gets there: within the
    source batch (1000 lines) it was read in. Away from that batch the pack is certain."""
    out, _, catalog, (half, line_of), _, _ = policy_run
    feeds = [json.loads(b) for b in read_channel(out, "feed_updates")]
    early = [f for f in feeds if line_of[f["trigger_event_id"]] < half - 1000]
    late = [f for f in feeds if line_of[f["trigger_event_id"]] > half + 1000]
    assert early and late
    assert {f["policy_version"] for f in early} == {"default@2026.11.1"}
    assert {f["policy_version"] for f in late} == {"default@strict-1"}
    assert not [i for f in late for i in f["items"] if catalog.get(i["sku"]) == "bikes"]
    assert [i for f in early for i in f["items"] if catalog.get(i["sku"]) == "bikes"]


def test_every_emitted_event_meets_its_contract(policy_run):
    out = policy_run[0]
    for channel, model in (("decision_records", DecisionRecord), ("feed_updates", FeedUpdate),
                           ("policy_changes", PolicyChange)):
        lines = read_channel(out, channel)
        assert lines, channel
        for line in lines:
            model.model_validate_json(line)  # raises on any field outside the contract


def test_decision_records_are_pseudonymized_and_carry_shadow_differences(policy_run):
    out, _, _, (half, line_of), _, recs = policy_run
    records = [json.loads(b) for b in read_channel(out, "decision_records")]
    raw = b"\n".join(read_channel(out, "decision_records"))
    users = {json.loads(r.value)["user_id"] for r in recs if r.type == "page_view"}
    assert records and not [u for u in users if f'"{u}"'.encode() in raw]
    assert all(len(r["user_ref"]) == 32 for r in records)
    late = [r for r in records if line_of[r["trigger_event_id"]] > half + 1000]
    assert any(r["shadow_differences"] for r in late)  # the old pack, shadowing the new one
    assert all(r.get("policy_version") for r in records if r["decision_type"] == "feed_update")
    assert all(r["explanation"] for r in records)


def test_erasure_purges_the_users_stored_traces(policy_run):
    _, store, _, _, erased, recs = policy_run
    assert store.read_many("user", [erased]) == [None]
    assert store.read_many("feed", [erased]) == [None]
    assert not [k for k in store.keys("session") if k.startswith(erased + "/")]
    others = [k for k in store.keys("user") if k != erased]
    assert len(others) > 50  # everyone else is still there
    assert len({k.split("/")[0] for k in store.keys("session")}) > 50
