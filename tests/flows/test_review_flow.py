"""Review checkpoints in the running flow: offers over the pack's review threshold are held
and requested for review; signed review_decision control events approve, reject or modify
them in event time; the rest time out to the safe default (nothing sent); each held decision
gets its one record when resolved."""

from __future__ import annotations

import json
import uuid
import zlib

import pytest

from connectors.file_sink import read_channel
from connectors.generator import GenConfig, Generator
from connectors.policy_packs import DEFAULT_DIR
from flows.main import RunConfig, run
from flows.settings import Settings
from policies.control_auth import ControlKey, sign_control
from policies.privacy import pseudonymize

SECRET, KEY = "reviewer-secret-0123456789", "reviewers-1"
KEYS = {KEY: ControlKey(secret=SECRET, issuer="alice@merch", actions=["review_decision"])}
PSEUDO = "test-key-of-16-chars+"
TIMEOUT_S = 120
REVIEW = f'''
[[rules]]
id = "review-offers"
type = "review"
actions = ["offer"]
description = "every discount needs a merchandiser's yes"
params = {{ min_discount_pct = 5, timeout_s = {TIMEOUT_S} }}
'''


def _control(event_id: str, ts: int, decision: str, verdict: str, **kw) -> bytes:
    doc = {"type": "control", "event_id": event_id, "ts": ts, "action": "review_decision",
           "issued_by": "alice@merch", "decision_id": decision, "verdict": verdict, **kw}
    return json.dumps(sign_control(doc, KEY, SECRET)).encode()


def _run(d, name: str, packs, events, controls=None) -> dict:
    out = d / name
    run(RunConfig(inputs=[str(events)], controls=[str(controls)] if controls else [],
                  output=str(out), store=f"memory://{uuid.uuid4().hex}",
                  settings=Settings(_env_file=None, progress_every_s=0, policy_dir=str(packs),
                                    control_keys=KEYS, pseudonym_key=PSEUDO)))
    return {ch: [json.loads(b) for b in read_channel(out, ch)]
            for ch in ("review_requests", "offers", "decision_records", "control_audit")}


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    d = tmp_path_factory.mktemp("review")
    packs = d / "packs"
    packs.mkdir()
    (packs / "default.toml").write_text((DEFAULT_DIR / "default.toml").read_text() + REVIEW)
    recs = list(Generator(GenConfig(seed=4, users=200, items=120, events=6000,
                                    malformed_rate=0.0)).records())
    events = d / "events.jsonl"
    events.write_bytes(b"\n".join(r.value for r in recs) + b"\n")
    first = _run(d, "first", packs, events)
    asked = sorted(first["review_requests"], key=lambda r: r["ts"])
    assert len(asked) >= 6, len(asked)
    approve, reject, modify = asked[0], asked[1], asked[2]
    controls = d / "controls.jsonl"
    controls.write_bytes(b"\n".join([
        _control("rv1", approve["ts"] + 30_000, approve["decision_id"], "approve",
                 reason="fine by me"),
        _control("rv2", reject["ts"] + 30_000, reject["decision_id"], "reject",
                 reason="margin too thin"),
        _control("rv3", modify["ts"] + 30_000, modify["decision_id"], "modify",
                 discount_pct=3.0, reason="3% is enough"),
    ]) + b"\n")
    second = _run(d, "second", packs, events, controls)
    return recs, first, second, (approve, reject, modify)


def test_held_offers_are_requested_and_not_sent_before_review(reviewed):
    _, first, _, _ = reviewed
    asked = {r["decision_id"] for r in first["review_requests"]}
    assert not asked & {o["id"] for o in first["offers"]}  # nothing approved them
    req = first["review_requests"][0]
    assert req["reasons"] == [f"review-offers: discount {req['proposal']['discount_pct']:g}% "
                              f">= 5%"] and req["proposal"]["discount_pct"] >= 5
    assert req["deadline_ts"] == req["ts"] + TIMEOUT_S * 1000
    assert req["user_ref"] and "user_id" not in req


def test_review_decisions_approve_reject_and_modify(reviewed):
    _, _, second, (approve, reject, modify) = reviewed
    offers = {o["id"]: o for o in second["offers"]}
    records = {r["decision_id"]: r for r in second["decision_records"]}
    assert approve["decision_id"] in offers
    assert offers[approve["decision_id"]]["discount_pct"] == approve["proposal"]["discount_pct"]
    rec = records[approve["decision_id"]]
    assert rec["review"]["status"] == "approved" and rec["review"]["reviewer"] == "alice@merch"
    assert rec["review"]["reason"] == "fine by me" and not rec["suppressed"]
    assert reject["decision_id"] not in offers
    rec = records[reject["decision_id"]]
    assert rec["suppressed"] and rec["review"]["status"] == "rejected"
    assert "margin too thin" in rec["explanation"]
    assert offers[modify["decision_id"]]["discount_pct"] == 3.0
    assert records[modify["decision_id"]]["review"]["status"] == "modified"
    audited = {a["control_event_id"]: a["outcome"] for a in second["control_audit"]}
    assert audited == {"rv1": "accepted", "rv2": "accepted", "rv3": "accepted"}


def test_unanswered_reviews_time_out_to_the_safe_default(reviewed):
    recs, first, _, _ = reviewed
    records = {r["decision_id"]: r for r in first["decision_records"]}
    # a shard times a hold out when a later user event of that shard passes its deadline
    ref_of, shard_last = {}, {}
    for r in recs:
        ev = json.loads(r.value)
        if "user_id" in ev:
            ref_of[pseudonymize(ev["user_id"], PSEUDO.encode())] = ev["user_id"]
            shard = zlib.crc32(ev["user_id"].encode()) % Settings(_env_file=None).state_shards
            shard_last[shard] = max(shard_last.get(shard, 0), ev["ts"])
    expired = [q for q in first["review_requests"]
               if shard_last[zlib.crc32(ref_of[q["user_ref"]].encode())
                             % Settings(_env_file=None).state_shards] > q["deadline_ts"]]
    assert expired
    for q in expired:
        rec = records[q["decision_id"]]
        assert rec["suppressed"] and rec["review"]["status"] == "timed_out", rec
        assert rec["review"]["resolved_ts"] == q["deadline_ts"]
    unresolved = {q["decision_id"] for q in first["review_requests"]} - {
        q["decision_id"] for q in expired}
    assert unresolved  # the input ended before their shards passed their deadlines
    for d in unresolved:  # one record each all the same: pending, not sent
        assert records[d]["review"]["status"] == "pending" and records[d]["suppressed"]
    held = [r for r in first["decision_records"] if r.get("review")]
    assert len(held) == len({r["decision_id"] for r in held}) == len(first["review_requests"])
