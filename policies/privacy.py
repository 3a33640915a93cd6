"""Pseudonymized user references for logs and decision records (keyed hash, HMAC-SHA256).

The key comes from settings (``BESPOKE_PSEUDONYM_KEY``) and is never logged. Without the
key a reference cannot be linked back to a user id; rotating the key unlinks old records.

>>> pseudonymize("U000042", b"k1") == pseudonymize("U000042", b"k1")
True
>>> pseudonymize("U000042", b"k1") != pseudonymize("U000042", b"k2")
True
>>> len(pseudonymize("U000042", b"k1"))
32

Ids of decisions and their records derive from the reference, never from the raw id:

>>> decision_id("feed", pseudonymize("U000042", b"k1"), "e1").startswith("feed:")
True
>>> "U000042" in decision_id("feed", pseudonymize("U000042", b"k1"), "e1")
False
>>> len(decision_id("config", "f" * 32, "e" * 128)) <= 124
True
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache


@lru_cache(maxsize=1 << 16)  # recent users repeat: one HMAC per user, not per decision
def pseudonymize(user_id: str, key: bytes) -> str:
    return hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()[:32]


def decision_id(kind: str, user_ref: str, event_id: str) -> str:
    """``<kind>:<user ref>:<trigger event id>``: deterministic (a replay repeats it) and
    short enough for the contracts' 128-character ids with a ``rec:`` prefix (a long event
    id is replaced by its hash)."""
    if len(event_id) > 80:
        event_id = "h" + hashlib.sha256(event_id.encode()).hexdigest()[:40]
    return f"{kind}:{user_ref}:{event_id}"
