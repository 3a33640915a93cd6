"""Pseudonymized user references for logs and decision records (keyed hash, HMAC-SHA256).

The key comes from settings (``BESPOKE_PSEUDONYM_KEY``) and is never logged. Without the
key a reference cannot be linked back to a user id; rotating the key unlinks old records.

>>> pseudonymize("U000042", b"k1") == pseudonymize("U000042", b"k1")
True
>>> pseudonymize("U000042", b"k1") != pseudonymize("U000042", b"k2")
True
>>> len(pseudonymize("U000042", b"k1"))
32
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache


@lru_cache(maxsize=1 << 16)  # recent users repeat: one HMAC per user, not per decision
def pseudonymize(user_id: str, key: bytes) -> str:
    return hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()[:32]
