"""The control plane's authentication: signed control events, keys bound to issuers and
actions, replay protection, and the audit verdict for each control event.

A control event (``features.events.Control``) is accepted only when it carries ``key_id`` and
``signature``: the hex HMAC-SHA256, under that key's secret, of the event's canonical form
(every field but ``signature``, defaults filled in, ``None`` left out, keys sorted, compact
JSON). The key fixes who issued it (``issued_by`` must be the key's issuer), which actions it
may take, and when (event time, for rotation: give the new key a ``not_before_ts``, the old
one a ``not_after_ts``). ``ReplayGuard`` then refuses an event id seen before and an event
older than the newest accepted one of its key by more than the replay window.

>>> keys = {"ops-1": ControlKey(secret="0123456789abcdef", issuer="ops",
...                             actions=["switch_policy"])}
>>> ctl = sign_control({"type": "control", "event_id": "c1", "ts": 5,
...                     "action": "switch_policy", "version": "2", "issued_by": "ops"},
...                    "ops-1", "0123456789abcdef")
>>> verify(Control.model_validate(ctl), keys) is None
True
>>> forged = Control.model_validate({**ctl, "action": "erase_user", "user_id": "u1"})
>>> verify(forged, keys)
'bad_signature: the signature does not match the event under key ops-1'
>>> guard = ReplayGuard(window_ms=60_000)
>>> guard.admit(Control.model_validate(ctl)), guard.admit(Control.model_validate(ctl))
(None, 'replayed: event id c1 was already applied under key ops-1')
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import OrderedDict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from features.events import Control, ControlAction

SIGNATURE_FIELD = "signature"


class ControlKey(BaseModel):
    """One signing key of the control plane (from settings: ``BESPOKE_CONTROL_KEYS``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: SecretStr = Field(min_length=16)
    issuer: str = Field(min_length=1, max_length=128, description="the only `issued_by` "
                                                                   "this key may sign")
    actions: list[ControlAction] = Field(description="the actions this key may take")
    not_before_ts: int = Field(0, ge=0, description="event time from which it is valid")
    not_after_ts: int | None = Field(None, ge=0, description="event time after which it "
                                                             "is not (rotation)")


def canonical(event: dict[str, Any] | Control) -> bytes:
    """The bytes that are signed: the validated event without its signature."""
    ctl = event if isinstance(event, Control) else Control.model_validate(
        {k: v for k, v in event.items() if k != SIGNATURE_FIELD})
    doc = ctl.model_dump(exclude={SIGNATURE_FIELD}, exclude_none=True)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signature(event: dict[str, Any] | Control, secret: str) -> str:
    return hmac.new(secret.encode(), canonical(event), hashlib.sha256).hexdigest()


def sign_control(event: dict[str, Any], key_id: str, secret: str) -> dict[str, Any]:
    """``event`` with ``key_id`` and its ``signature`` (what an operator's tool sends)."""
    doc = {**{k: v for k, v in event.items() if k != SIGNATURE_FIELD}, "key_id": key_id}
    return {**doc, SIGNATURE_FIELD: signature(doc, secret)}


def verify(ctl: Control, keys: dict[str, ControlKey]) -> str | None:
    """``None`` when ``ctl`` is authentic and allowed, else the reason it is refused."""
    if not ctl.key_id or not ctl.signature:
        return "unsigned: control events need key_id and signature"
    key = keys.get(ctl.key_id)
    if key is None:
        return f"unknown_key: no control key {ctl.key_id!r}"
    expected = signature(ctl, key.secret.get_secret_value())
    if not hmac.compare_digest(expected, ctl.signature):
        return f"bad_signature: the signature does not match the event under key {ctl.key_id}"
    if ctl.issued_by != key.issuer:
        return (f"wrong_issuer: key {ctl.key_id} signs for {key.issuer!r}, "
                f"not {ctl.issued_by!r}")
    if ctl.action not in key.actions:
        return f"action_not_allowed: key {ctl.key_id} may not {ctl.action}"
    if ctl.ts < key.not_before_ts or (key.not_after_ts is not None
                                      and ctl.ts > key.not_after_ts):
        return f"key_not_valid: key {ctl.key_id} is not valid at ts {ctl.ts}"
    return None


class ReplayGuard:
    """Per key: the ids of accepted events (the last ``remember`` of them) and the newest
    accepted event time. Small and picklable: it lives in Bytewax state."""

    def __init__(self, window_ms: int, remember: int = 10_000) -> None:
        self.window_ms = window_ms
        self.remember = remember
        self.seen: dict[str, OrderedDict[str, None]] = {}
        self.newest: dict[str, int] = {}

    def admit(self, ctl: Control) -> str | None:
        """``None`` and remembered when fresh, else the reason it is refused."""
        key = ctl.key_id or ""
        seen = self.seen.setdefault(key, OrderedDict())
        if ctl.event_id in seen:
            return f"replayed: event id {ctl.event_id} was already applied under key {key}"
        newest = self.newest.get(key)
        if newest is not None and ctl.ts < newest - self.window_ms:
            return (f"stale: ts {ctl.ts} is older than the replay window "
                    f"({self.window_ms} ms before {newest})")
        seen[ctl.event_id] = None
        if len(seen) > self.remember:
            seen.popitem(last=False)
        self.newest[key] = max(ctl.ts, newest if newest is not None else ctl.ts)
        return None
