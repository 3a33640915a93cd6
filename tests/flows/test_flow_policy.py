"""Policy in the running flow: signed control events (on their own input) switch packs in
event time, refusals are logged, every control event is audited, decisions carry
pseudonymized records, and erasure purges a user's stored traces."""

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
from policies.control_auth import ControlKey, sign_control

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


OPS_SECRET, PRIVACY_SECRET = "ops-secret-0123456789", "privacy-secret-0123456789"
KEYS = {"ops-1": ControlKey(secret=OPS_SECRET, issuer="ops", actions=[
            "switch_policy", "shadow_policy", "canary_policy", "rollback_policy"]),
        "privacy-1": ControlKey(secret=PRIVACY_SECRET, issuer="dpo", actions=["erase_user"])}


def _control(event_id, ts, action, key="ops-1", secret=OPS_SECRET, issuer="ops", **kw):
    doc = {"type": "control", "event_id": event_id, "ts": ts, "action": action,
           "issued_by": issuer, **kw}
    return json.dumps(sign_control(doc, key, secret) if key else doc).encode()


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
    end = json.loads(lines[-1])["ts"] + 1
    erase = _control("c4", end, "erase_user", "privacy-1", PRIVACY_SECRET, "dpo",
                     user_id=erased)
    # in the clickstream a control event is only a dead letter, signed or not
    lines = lines[:half] + [erase] + lines[half:]
    controls = [_control("c1", ts_half, "switch_policy", version="strict-1"),
                _control("c2", ts_half, "switch_policy", version="broken-1"),
                _control("c3", ts_half, "shadow_policy", version="2026.12.1"),
                erase,
                _control("r1", ts_half, "switch_policy", key=None, version="strict-1"),
                _control("r2", ts_half, "switch_policy", secret="wrong-secret-0123456",
                         version="strict-1"),
                _control("r3", ts_half, "erase_user", user_id=erased),  # ops may not erase
                _control("r4", ts_half, "switch_policy", issuer="mallory", version="strict-1"),
                _control("c1", ts_half, "switch_policy", version="strict-1")]  # a replay
    src, ctl = d / "events.jsonl", d / "controls.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    ctl.write_bytes(b"\n".join(controls) + b"\n")
    name = uuid.uuid4().hex
    run(RunConfig(inputs=[str(src)], controls=[str(ctl)], output=str(d / "out"),
                  store=f"memory://{name}",
                  settings=Settings(_env_file=None, progress_every_s=0, policy_dir=str(packs),
                                    policy_active="default@2026.12.1", control_keys=KEYS,
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
    assert ("shadow_policy", "default@2026.12.1", True) in got
    assert len(changes) == len({c["id"] for c in changes}) == 4  # once, not once per shard


def test_every_control_event_is_audited_and_forgeries_are_refused(policy_run):
    out = policy_run[0]
    audit = {a["control_event_id"] + ":" + a["outcome"]: a
             for a in map(json.loads, read_channel(out, "control_audit"))}
    assert sorted(audit) == ["c1:accepted", "c1:refused", "c2:accepted", "c3:accepted",
                             "c4:accepted", "r1:refused", "r2:refused", "r3:refused",
                             "r4:refused"]
    reasons = {k: a["reason"].split(":")[0] for k, a in audit.items() if "refused" in k}
    assert reasons == {"c1:refused": "replayed", "r1:refused": "unsigned",
                       "r2:refused": "bad_signature", "r3:refused": "action_not_allowed",
                       "r4:refused": "wrong_issuer"}
    erased = policy_run[4]
    assert audit["c4:accepted"]["user_ref"] and erased not in json.dumps(audit)
    dead = [json.loads(b) for b in read_channel(out, "dead_letters")]
    assert sorted(d["error"].split(":")[0] for d in dead) == [
        "action_not_allowed", "bad_signature", "control_refused", "replayed", "unsigned",
        "wrong_issuer"]  # the one in the clickstream: control_refused
    assert erased not in json.dumps([{k: v for k, v in d.items() if k != "original"}
                                     for d in dead])


def test_feeds_follow_the_active_pack(policy_run):
    """A policy control takes effect in event time: decisions triggered before its ``ts``
    use the old pack, those at or after it the new one, wherever the control was read."""
    out, _, catalog, (half, line_of), _, _ = policy_run
    feeds = [json.loads(b) for b in read_channel(out, "feed_updates")]
    early = [f for f in feeds if line_of[f["trigger_event_id"]] < half]
    late = [f for f in feeds if line_of[f["trigger_event_id"]] > half + 1]
    assert early and late
    assert {f["policy_version"] for f in early} == {"default@2026.12.1"}
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
    late = [r for r in records if line_of[r["trigger_event_id"]] > half + 1]
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
