"""User and session features as a pure fold over user events (event time throughout).

``UserFold.apply(state, x)`` folds one input of one user (a ``UserEvent``, an
``AffinityHint`` from the item step, consent, erasure) and returns what it emits right away
(late-event records, co-visitation pairs, the decision input); ``rows(state, user)``
returns the store rows of the views changed since the last call, so the operator can
mirror them per event (replay) or coalesced on a timer (online).

>>> from features.interactions import AffinityHint, UserEvent
>>> f = UserFold(allowed_lateness_ms=3_600_000)
>>> s = f.new()
>>> e = lambda kind, sku, ts: UserEvent("u1", kind, ts, f"e{ts}", "s1", ((sku, 1, 20.0),), "")
>>> _ = f.apply(s, AffinityHint("u1", "page_view", 1_000, "e1000", "bikes", "acme", "10-25", ()))
>>> _ = f.apply(s, e("page_view", "A", 1_000)); pairs = f.apply(s, e("page_view", "B", 2_000))
>>> [p for p in pairs if isinstance(p, tuple)]
[('A', 'B', 'vv', 2000), ('B', 'A', 'vv', 2000)]
>>> _ = f.apply(s, e("order", "B", 3_000))
>>> rows = {w.view: w.fields for w in f.rows(s, "u1")}
>>> rows["user_activity_v1"]["views_1h"], rows["user_purchases_v1"]["n_orders"]
(2, 1)
>>> rows["session_state_v1"]["intent_stage"], rows["user_recency_v1"]["last_items"]
('purchased', 'B,A')
>>> rows["user_affinity_v1"]["top_categories"]
'bikes:1.0000'

"""

from __future__ import annotations

import zlib
from typing import Any, NamedTuple

from features.decay import DecayedMap, strongest
from features.definitions import (
    SESSION_STATE,
    USER_ACTIVITY,
    USER_AFFINITY,
    USER_CART,
    USER_PURCHASES,
    USER_RECENCY,
)
from features.events import LateEvent
from features.interactions import AffinityHint, UserEvent
from features.store import StorePurge, StoreWrite
from features.windows import TYPE_INDEX, WindowCounts

H = 3_600_000
AFFINITY_HL = 7 * 24 * H
INTEREST_HL = 6 * H
SESSION_GAP = 30 * 60_000
WEIGHT = {"page_view": 1.0, "click": 1.0, "add_to_cart": 3.0, "order": 5.0}
MAX_AFFINITY, MAX_INTEREST, MAX_LAST, MAX_CART, MAX_BOUGHT, MAX_SESS_ITEMS = 24, 12, 10, 10, 10, 32
COVIS_LOOKBACK = 3
MAX_CATEGORIES, COVIS_SEEDS = 3, 3


ERASED_REASON = "at or before the user's erasure: dropped"


def session_prefix(user_id: str) -> str:
    """The start of every session key of ``user_id``, and of no other user's: ``/`` and
    ``%`` in the user id are escaped, so erasing ``alice`` never touches ``alice/x``'s
    sessions (``native/src/user.rs`` builds the same keys).

    >>> session_prefix("alice"), session_prefix("alice/x"), session_key("a%/b", "s1")
    ('alice/', 'alice%2Fx/', 'a%25%2Fb/s1')
    """
    return user_id.replace("%", "%25").replace("/", "%2F") + "/"


def session_key(user_id: str, session_id: str) -> str:
    return session_prefix(user_id) + session_id

class UserFeatures(NamedTuple):
    """What the decision path needs after one event (emitted per event when asked)."""

    user_id: str
    event_id: str
    ts: int
    interests: list[tuple[str, float]]  # strongest first, decayed to ts
    purchased: tuple[str, ...]
    consent: tuple[str, ...] | None
    erased: bool = False
    kind: str = ""  # the trigger's event type
    skus: tuple[str, ...] = ()  # the items the trigger touched
    cart: tuple[str, ...] = ()
    attributes: str = ""  # top attribute affinities 'k=v:w,...' (views and clicks only)
    categories: tuple[str, ...] = ()  # the user's strongest categories (affinity), best first
    recent: tuple[str, ...] = ()  # the last distinct items, newest first (co-visitation seeds)


class UserState:
    __slots__ = ("last_ts", "n_events", "win", "aff", "interest", "last", "cart", "cart_ts",
                 "orders",
                 "bought", "consent", "sess", "dirty", "erased", "erased_until")

    def __init__(self, lateness_ms: int = H) -> None:
        self.last_ts = 0
        self.n_events = 0
        self.win = WindowCounts(lateness_ms)
        self.aff = DecayedMap(AFFINITY_HL)  # "c:<category>", "b:<brand>", "p:<band>", "a:<k=v>"
        self.interest = DecayedMap(INTEREST_HL)  # sku -> interest, for the feed
        self.last: list[str] = []  # distinct skus, newest first
        self.cart: dict[str, tuple[int, float]] = {}
        self.cart_ts = 0  # event time of the last cart change
        self.orders = [0, 0.0, 0]  # n_orders, total_spent, last_order_ts
        self.bought: list[str] = []  # newest last
        self.consent: tuple[str, ...] | None = None
        # session: [id, start_ts, last_ts, distinct item hashes, cart_adds, ordered, recent]
        self.sess: list[Any] | None = None
        self.dirty: set[str] = set()
        self.erased = False
        self.erased_until = -1  # the last erasure's event time: older inputs are dropped

    def __getstate__(self) -> Any:
        return tuple(getattr(self, s) for s in self.__slots__)

    def __setstate__(self, st: Any) -> None:
        for name, v in zip(self.__slots__, st, strict=True):
            setattr(self, name, v)


def _prefixed(aff: DecayedMap, prefix: str) -> dict[str, float]:
    """The affinities of one kind ("c:" category, "b:" brand, "p:" price band, "a:"
    attribute), keys without the prefix."""
    n = len(prefix)
    return {key[n:]: g for key, g in aff.w.items() if key.startswith(prefix)}


def _encode(weights: dict[str, float], k: int, factor: float) -> str:
    """The ``k`` strongest as 'key:weight,...', weights scaled by ``factor`` (the decay)."""
    return ",".join(f"{key}:{g * factor:.4f}" for key, g in strongest(weights, k))


def _top(aff: DecayedMap, prefix: str, k: int, as_of: int) -> str:
    return _encode(_prefixed(aff, prefix), k, aff._decay(as_of))


def _tops(aff: DecayedMap, k: int, as_of: int) -> dict[str, str]:
    """``_top`` of every prefix present, in one pass over the affinities."""
    groups: dict[str, dict[str, float]] = {}
    for key, g in aff.w.items():
        groups.setdefault(key[:2], {})[key[2:]] = g
    f = aff._decay(as_of)
    return {p: _encode(d, k, f) for p, d in groups.items()}


def _stage(sess: list[Any]) -> str:
    if sess[5]:
        return "purchased"
    if sess[4]:
        return "considering"
    return "exploring" if len(sess[3]) >= 3 else "browsing"


class UserFold:
    def __init__(self, allowed_lateness_ms: int, ttl_s: int | None = None,
                 decision_inputs: bool = False, max_interests: int = 20) -> None:
        self.lateness = allowed_lateness_ms
        views = (USER_ACTIVITY, USER_AFFINITY, USER_RECENCY, USER_CART, USER_PURCHASES,
                 SESSION_STATE)
        self.meta = {v.name: (v.store_prefix, v.ttl_s if ttl_s is None else ttl_s)
                     for v in views}
        self.idle_reset_ms = max(v.ttl_s for v in views if v.entity == "user") * 1000
        self.decision_inputs = decision_inputs
        self.max_interests = max_interests

    ordered_input = AffinityHint  # applied in event-time order per batch (sharded_fold)

    def new(self) -> UserState:
        return UserState(self.lateness)

    # ------------------------------------------------------------------ fold
    def apply(self, s: UserState, x: tuple[Any, ...]) -> list[Any]:
        kind = x[1]
        if kind == "consent":
            if x[2] > s.erased_until:
                s.consent = x[4]
            return []
        if kind == "erase":
            # the state goes; a tombstone stays: inputs up to the erasure's event time are
            # dropped whenever they arrive, so erasure does not depend on arrival order
            until = max(s.erased_until, x[2])
            s.__init__(self.lateness)  # type: ignore[misc]
            s.erased_until = until
            out: list[Any] = [StorePurge("user", x[0]), StorePurge("feed", x[0]),
                         StorePurge("session", session_prefix(x[0]), prefix=True)]
            if self.decision_inputs:
                out.append(UserFeatures(x[0], x[3], x[2], [], (), None, erased=True))
            return out
        if type(x) is AffinityHint:
            return self._affinity(s, x)
        e: UserEvent = x  # type: ignore[assignment]
        ts = e.ts
        if ts <= s.erased_until:
            return [LateEvent(id=f"late:user:{e.user_id}:{e.event_id}", ts=ts,
                              entity="user", key=e.user_id, event_id=e.event_id, event_ts=ts,
                              watermark=s.erased_until, lateness_ms=s.erased_until - ts,
                              reason=ERASED_REASON)]
        if ts < s.last_ts - self.lateness:
            return [LateEvent(id=f"late:user:{e.user_id}:{e.event_id}", ts=ts,
                              entity="user", key=e.user_id, event_id=e.event_id, event_ts=ts,
                              watermark=s.last_ts, lateness_ms=s.last_ts - ts,
                              reason=f"older than the user's watermark minus the allowed "
                                     f"lateness ({self.lateness} ms)")]
        if s.n_events and ts - s.last_ts > self.idle_reset_ms:  # expired in event time
            consent, until = s.consent, s.erased_until
            s.__init__(self.lateness)  # type: ignore[misc]
            s.consent, s.erased_until = consent, until
        out = []
        w = WEIGHT[kind]
        s.n_events += 1
        s.last_ts = max(s.last_ts, ts)
        s.win.add(TYPE_INDEX[kind], ts)
        rings = s.win.rings
        if len(rings["1h"]) > 13 or len(rings["24h"]) > 25 or len(rings["7d"]) > 8:
            s.win.prune(s.last_ts)  # only once a ring holds buckets no window can reach
        dirty = s.dirty
        dirty.update(("user_activity", "user_recency"))
        for sku, qty, unit_price in e.lines:
            s.interest.add(sku, w, ts)
            self._recent(s, sku, ts)
            if kind == "add_to_cart":
                q, _ = s.cart.get(sku, (0, 0.0))
                s.cart[sku] = (q + qty, unit_price)
                if len(s.cart) > MAX_CART:
                    s.cart.pop(next(iter(s.cart)))
                s.cart_ts = max(s.cart_ts, ts)
                dirty.add("user_cart")
            elif kind == "order":
                s.orders[1] += qty * unit_price
                if sku in s.bought:
                    s.bought.remove(sku)
                s.bought.append(sku)
                if s.cart.pop(sku, None) is not None:
                    s.cart_ts = max(s.cart_ts, ts)
                    dirty.add("user_cart")
            out.extend(self._session(s, e, sku))
        s.interest.bound(MAX_INTEREST)
        if kind == "order":
            s.orders[0] += 1
            s.orders[2] = max(s.orders[2], ts)
            del s.bought[:-MAX_BOUGHT]
            dirty.add("user_purchases")
        if self.decision_inputs:
            attrs = _top(s.aff, "a:", 5, s.last_ts) if kind in ("page_view", "click") else ""
            cats = tuple(k for k, _ in strongest(_prefixed(s.aff, "c:"), MAX_CATEGORIES))
            out.append(UserFeatures(e.user_id, e.event_id, ts,
                                    s.interest.top(self.max_interests, s.last_ts),
                                    tuple(s.bought), s.consent, False, kind,
                                    tuple(sku for sku, _, _ in e.lines), tuple(s.cart), attrs,
                                    cats, tuple(s.last[:COVIS_SEEDS])))
        return out

    def _affinity(self, s: UserState, h: AffinityHint) -> list[Any]:
        # a hint is judged by arrival only against the erasure: the item step sends hints of
        # the events it took in, and they reach this step after other inputs by a path whose
        # timing depends on batching (judging them against the user's watermark made
        # affinities depend on batch boundaries); decayed sums do not depend on order
        if h.ts <= s.erased_until:
            return []
        keys = ["p:" + h.price_band] if h.price_band else []
        if h.category:
            keys += ("c:" + h.category, "b:" + h.brand, *("a:" + a for a in h.attrs))
        s.aff.add_all(keys, WEIGHT[h.kind], h.ts)
        s.aff.bound(MAX_AFFINITY, slack=4)
        s.dirty.add("user_affinity")
        return []

    @staticmethod
    def _recent(s: UserState, sku: str, ts: int) -> None:
        """Newest first; an out-of-order event's item goes behind the newer ones it missed."""
        if ts >= s.last_ts:
            if sku in s.last:
                s.last.remove(sku)
            s.last.insert(0, sku)
            del s.last[MAX_LAST:]
        elif sku not in s.last and len(s.last) < MAX_LAST:
            s.last.append(sku)

    def _session(self, s: UserState, e: UserEvent, sku: str) -> list[tuple[Any, ...]]:
        sess = s.sess
        closing: list[Any] = []
        if sess is None or sess[0] != e.session_id or e.ts - sess[2] > SESSION_GAP:
            if sess is not None and sess[0] != e.session_id and e.ts < sess[1]:
                return []  # a late event of an earlier session: session state has moved on
            if sess is not None and "session_state" in s.dirty:  # its last value, now
                closing.append(self._session_row(sess, e.user_id))
            sess = s.sess = [e.session_id, e.ts, e.ts, [], 0, False, []]
        sess[1], sess[2] = min(sess[1], e.ts), max(sess[2], e.ts)
        h = zlib.crc32(sku.encode())
        if h not in sess[3] and len(sess[3]) < MAX_SESS_ITEMS:
            sess[3].append(h)
        if e.kind == "add_to_cart":
            sess[4] += 1
        elif e.kind == "order":
            sess[5] = True
        s.dirty.add("session_state")
        pairs: list[Any] = []
        buy = e.kind in ("add_to_cart", "order")
        for a, a_ts in sess[6]:
            if a != sku and abs(e.ts - a_ts) <= SESSION_GAP:
                pairs.append((a, sku, "vb" if buy else "vv", e.ts))
                if not buy:
                    pairs.append((sku, a, "vv", e.ts))
        recent = [(k, t) for k, t in sess[6] if k != sku]
        sess[6] = [(sku, e.ts), *recent][:COVIS_LOOKBACK]
        return closing + pairs if closing else pairs

    # ------------------------------------------------------------------ mirror rows
    def rows(self, s: UserState, user_id: str) -> list[StoreWrite]:
        if not s.dirty or s.erased:
            return []
        out = []
        t = s.last_ts
        for view in sorted(s.dirty):
            prefix, ttl = self.meta[view]
            if view == "session_state":
                if s.sess is not None:
                    out.append(self._session_row(s.sess, user_id))
                continue
            vt = int(s.cart_ts if view == "user_cart" else s.orders[2]
                     if view == "user_purchases" else t)
            out.append(StoreWrite("user", user_id, prefix, self._row(view, s, vt), vt, ttl))
        s.dirty = set()
        return out

    def _session_row(self, sess: list[Any], user_id: str) -> StoreWrite:
        prefix, ttl = self.meta["session_state"]
        row = {"user_id": user_id, "items_seen": len(sess[3]),
               "dwell_s": (sess[2] - sess[1]) / 1000, "cart_adds": sess[4],
               "intent_stage": _stage(sess), "start_ts": sess[1], "last_ts": sess[2]}
        return StoreWrite("session", session_key(user_id, sess[0]), prefix, row, sess[2], ttl)

    @staticmethod
    def _row(view: str, s: UserState, t: int) -> dict[str, Any]:
        if view == "user_activity":
            row: dict[str, Any] = {}
            for w in ("1h", "24h", "7d"):
                views, carts, orders = s.win.counts(w, t)
                row[f"views_{w}"], row[f"carts_{w}"], row[f"orders_{w}"] = views, carts, orders
            row["as_of"] = t
            return row
        if view == "user_affinity":
            tops = _tops(s.aff, 5, t)
            return {"top_categories": tops.get("c:", ""), "top_brands": tops.get("b:", ""),
                    "top_price_bands": tops.get("p:", ""),
                    "top_attributes": tops.get("a:", ""), "as_of": t}
        if view == "user_recency":
            return {"last_ts": s.last_ts, "n_events": s.n_events,
                    "last_items": ",".join(s.last)}
        if view == "user_cart":
            return {"cart_items": ",".join(s.cart),
                    "cart_value": round(sum(q * p for q, p in s.cart.values()), 2), "as_of": t}
        if view == "user_purchases":
            n, spent, last = s.orders
            return {"n_orders": n, "total_spent": round(spent, 2),
                    "avg_order_value": round(spent / n, 2) if n else 0.0,
                    "last_order_ts": last, "purchased_items": ",".join(reversed(s.bought)),
                    "as_of": t}
        raise KeyError(view)
