"""Review holds (agent.review): resolution outcomes, the price policy's cap on a modified
discount, timeouts in event time, and holds surviving a snapshot (pickle) of the shard."""

import pickle

from agent.allocation import Proposal
from agent.review import Hold, Reviews, resolve

REC = {"id": "rec:offer:u:e1", "ts": 1_000, "decision_id": "offer:u:e1",
       "decision_type": "offer", "suppressed": False, "user_ref": "u", "trigger_event_id": "e1",
       "goal": "push_offer", "plan": "p", "plan_version": "1", "model_version": "m",
       "explanation": "because"}


def _hold(did: str = "offer:u:e1", deadline: int = 5_000) -> Hold:
    p = Proposal("S1", "user-1", did, 1_000, 90_000, 10.0, 50.0, "EUR", 3, "e1", REC)
    return Hold(did, "offer", "user-1", "S1", 1_000, deadline, ("r: discount 10% >= 5%",),
                8.0, p, REC)


def test_a_modified_discount_is_capped_by_the_price_policy():
    (p,) = resolve(_hold(), "modify", 2_000, "bob", "more", "rv", discount_pct=15.0)
    assert p.discount_pct == 8.0 and "capped by the price policy from 15%" in p.record[
        "explanation"]
    assert p.record["review"]["status"] == "modified" and p.record["review"]["reviewer"] == "bob"
    (p,) = resolve(_hold(), "modify", 2_000, "bob", None, "rv", discount_pct=4.0)
    assert p.discount_pct == 4.0


def test_rejection_and_timeout_send_nothing_and_record_why():
    (rec,) = resolve(_hold(), "reject", 2_000, "bob", "no", "rv")
    assert rec.channel == "decision_records" and rec.doc["suppressed"]
    assert rec.doc["review"]["status"] == "rejected"
    reviews = Reviews()
    reviews.add(_hold("a", deadline=5_000))
    reviews.add(_hold("b", deadline=9_000))
    assert reviews.expire(5_000) == []  # at the deadline: still in time
    (out,) = reviews.expire(5_001)
    assert out.doc["review"] == {"status": "timed_out", "reasons": ["r: discount 10% >= 5%"],
                                 "requested_ts": 1_000, "resolved_ts": 5_000}
    assert list(reviews.held) == ["b"]
    assert reviews.decide("a", "approve", 6_000, "bob", None, "rv", None) == []  # too late


def test_holds_survive_a_snapshot():
    reviews = Reviews()
    reviews.add(_hold())
    back = pickle.loads(pickle.dumps(reviews))
    (p,) = back.decide("offer:u:e1", "approve", 2_000, "bob", "ok", "rv", None)
    assert p.discount_pct == 10.0 and p.record["review"]["status"] == "approved"
