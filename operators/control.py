"""Control step: the control topic's records → authenticated control events, with an audit
record for each one and a dead letter for each refused one.

    control records ─► validate + verify signature ─► one key ─► replay guard (state) ─┬► accepted
                                                                                       ├► audit
                                                                                       └► dead

Control events are rare, so they all meet on one key: one worker applies the replay guard
(``policies.control_auth.ReplayGuard``) in order, and its state is in Bytewax state, so a
resumed run refuses the same replays. Accepted policy controls go on to every decision shard
(``operators.decision.feed_decision``), accepted erasures to the user step.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Stream

from features.channels import CONTROL_AUDIT
from features.events import (
    Control,
    ControlAudit,
    DeadLetter,
    Outgoing,
    outgoing,
)
from features.interactions import user_inputs
from features.validate import RawRecord, dead_letter, is_marker, validate_record
from policies.control_auth import ControlKey, ReplayGuard, verify
from policies.privacy import pseudonymize


class ControlStreams(NamedTuple):
    """Chunk streams (see ``operators.chunks``)."""

    accepted: Stream[list[Control]]
    erasures: Stream[list[tuple]]  # user inputs ("erase") for the user step
    audit: Stream[list[Outgoing]]
    dead_letters: Stream[list[DeadLetter]]


def _audit(ctl: Control, outcome: Literal["accepted", "refused"], reason: str,
           pseudonym_key: bytes) -> Outgoing:
    ref = pseudonymize(ctl.user_id, pseudonym_key) if ctl.user_id else None
    return outgoing(CONTROL_AUDIT.name, ctl.key_id or "unsigned", ControlAudit(
        id=f"control:{ctl.event_id}", ts=ctl.ts, control_event_id=ctl.event_id,
        action=ctl.action, outcome=outcome, reason=reason[:512], key_id=ctl.key_id,
        issued_by=ctl.issued_by[:128], user_ref=ref, version=ctl.version))


def control_plane(step_id: str, records: Stream[RawRecord], keys: dict[str, ControlKey],
                  window_ms: int, pseudonym_key: bytes) -> ControlStreams:
    def check(rec: RawRecord) -> tuple:
        """(record, control or None, refusal reason or None)."""
        events, dead = validate_record(rec)
        if dead:
            return rec, None, dead[0].error
        ev = events[0]
        if type(ev) is not Control:
            return rec, None, f"not_control: a {ev.type} event on the control topic"
        return rec, ev, verify(ev, keys)

    records = op.filter(f"{step_id}_records", records,
                        lambda r: not is_marker(r))  # a file's end: no event
    checked = op.map(f"{step_id}_verify", records, check)
    keyed = op.key_on(f"{step_id}_key", checked, lambda _: "control")

    def guard(state: ReplayGuard | None, item: tuple) -> tuple[ReplayGuard, list]:
        state = state or ReplayGuard(window_ms)
        rec, ctl, why = item
        if ctl is None:
            return state, [dead_letter(rec, why, step_id)]
        if why is None:
            why = state.admit(ctl)
        if why is None:
            return state, [ctl, _audit(ctl, "accepted", "", pseudonym_key)]
        return state, [dead_letter(rec, why, step_id), _audit(ctl, "refused", why, pseudonym_key)]

    judged = op.map(f"{step_id}_unkey", op.stateful_map(f"{step_id}_guard", keyed, guard),
                    lambda kv: kv[1])

    def pick(kind: type, fn=lambda x: [x]):
        def run(batch: list[list]) -> list:
            out = [y for items in batch for x in items if type(x) is kind for y in fn(x)]
            return [out] if out else []
        return run

    accepted = op.flat_map_batch(f"{step_id}_accepted", judged, pick(Control))
    erasures = op.flat_map_batch(f"{step_id}_erasures", judged, pick(Control, user_inputs))
    audit = op.flat_map_batch(f"{step_id}_audit", judged, pick(Outgoing))
    dead = op.flat_map_batch(f"{step_id}_dead", judged, pick(DeadLetter))
    return ControlStreams(accepted, erasures, audit, dead)
