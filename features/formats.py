"""Decoders from one raw record (a line of a file, a Kafka message value) to event dicts.

``native`` is Bespoke's own JSON contract; the others map public dataset formats onto it so
the same flow can replay real traffic:

- ``otto``: OTTO sessions JSONL ``{"session": 1, "events": [{"aid", "ts", "type"}]}``;
  ``clicks``/``carts``/``orders`` become ``click``/``add_to_cart``/``order``. Sessions are
  anonymous, so the session id is also the user id. OTTO has no prices: orders carry
  ``unit_price`` 0 and currency ``EUR``.
- ``yoochoose``: clicks ``session,timestamp,item,category`` become ``click``; buys
  ``session,timestamp,item,price,quantity`` become one-line ``order``.
- ``retailrocket``: ``timestamp,visitorid,event,itemid,transactionid`` with ``view`` →
  ``page_view``, ``addtocart`` → ``add_to_cart``, ``transaction`` → ``order``.
- ``movielens``: ``u.data`` (``user item rating timestamp``, tab separated): every rating
  is a ``page_view`` of the movie; ratings of 4 and 5 also count as a ``click``.

>>> decode_record("otto", b'{"session":7,"events":[{"aid":3,"ts":1659304800,"type":"carts"}]}', 0)
[{'type': 'add_to_cart', 'event_id': 'otto:7:0', 'ts': 1659304800000, 'user_id': '7', \
'session_id': '7', 'sku': '3', 'quantity': 1}]

A header line decodes to ``[]``. Any other input, whatever its bytes, raises ``ValueError``
with the reason (the caller turns it into a dead letter): ids must be non-empty strings or
integers, times finite numbers, nesting and sizes bounded. ``tests/features/test_decoder_fuzz.py``
holds every format to that with thousands of generated inputs.

>>> decode_record("otto", b'{"session":1,"events":[{"aid":null,"ts":1,"type":"clicks"}]}', 0)
Traceback (most recent call last):
...
ValueError: otto: events[0].aid: expected a string or an integer id, got None
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

FORMATS = ("native", "otto", "yoochoose", "retailrocket", "movielens", "diginetica")
MAX_RECORD_BYTES = 4 * 1024 * 1024  # one dataset record (an OTTO session line can be long)
MAX_TS_MS = 4_102_444_800_000  # 2100-01-01, the contract's bound


def _id(v: object, where: str) -> str:
    """A dataset id: a non-empty string or an integer (never a bool, null, float or list)."""
    if type(v) is int:
        return str(v)
    if type(v) is str and v.strip():
        return v
    raise ValueError(f"{where}: expected a string or an integer id, got {v!r:.40}")


def _ms(ts: object, where: str = "ts") -> int:
    """Epoch seconds or milliseconds to milliseconds (values below 1e11 are seconds)."""
    if type(ts) is str:
        try:
            ts = float(ts)
        except ValueError:
            raise ValueError(f"{where}: not a number: {ts!r:.40}") from None
    if type(ts) not in (int, float):
        raise ValueError(f"{where}: expected a number, got {ts!r:.40}")
    x = float(ts)  # type: ignore[arg-type]  # an int or a float, checked above
    if not math.isfinite(x) or not 0 <= x <= MAX_TS_MS:
        raise ValueError(f"{where}: time {ts!r:.40} out of range")
    return int(x * 1000) if x < 1e11 else int(ts)  # type: ignore[call-overload]


def _json(line: bytes) -> object:
    try:
        return orjson.loads(line)  # nesting is bounded (orjson refuses depth > 1024)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e}") from None


def _otto(line: bytes, offset: int) -> list[dict[str, Any]]:
    obj = _json(line)
    if not isinstance(obj, dict) or "session" not in obj or not isinstance(obj.get("events"), list):
        raise ValueError("expected an object with 'session' and a list 'events'")
    sess = _id(obj["session"], "session")
    out = []
    for i, e in enumerate(obj["events"]):
        if not isinstance(e, dict):
            raise ValueError(f"events[{i}]: expected an object, got {e!r:.40}")
        kind = e.get("type")
        base = {"event_id": f"otto:{sess}:{i}", "ts": _ms(e.get("ts"), f"events[{i}].ts"),
                "user_id": sess}
        sku = _id(e.get("aid"), f"events[{i}].aid")
        if kind == "clicks":
            out.append({"type": "click", **base, "session_id": sess, "sku": sku})
        elif kind == "carts":
            out.append({"type": "add_to_cart", **base, "session_id": sess, "sku": sku,
                        "quantity": 1})
        elif kind == "orders":
            out.append({"type": "order", **base, "session_id": sess,
                        "order_id": f"otto:{sess}:{i}",
                        "lines": [{"sku": sku, "quantity": 1, "unit_price": 0.0}],
                        "currency": "EUR"})
        else:
            raise ValueError(f"unknown event type {kind!r:.40} at index {i}")
    return out


def _iso_ms(text: str) -> int:
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"timestamp {text!r:.40} is not an ISO 8601 time") from None
    ms = ts * 1000
    if not 0 <= ms <= MAX_TS_MS:
        raise ValueError(f"timestamp {text!r:.40} out of range")
    return int(ms)


def _cols(line: bytes, sep: str | None = ",") -> list[str]:
    return line.decode().strip().split(sep)


def _yoochoose(line: bytes, offset: int) -> list[dict[str, Any]]:
    cols = _cols(line)
    sess = cols[0]
    if not sess.isdigit():
        if offset == 0:
            return []  # header
        raise ValueError(f"session id {sess!r:.40} is not a number")
    if len(cols) not in (4, 5):
        raise ValueError(f"expected 4 (clicks) or 5 (buys) columns, got {len(cols)}")
    base = {"event_id": f"yc:{offset}", "ts": _iso_ms(cols[1]), "user_id": sess,
            "session_id": sess, "sku": _id(cols[2], "item")}
    if len(cols) == 4:
        return [{"type": "click", **base}]
    sku = base.pop("sku")
    price, qty = _number(cols[3], "price"), _number(cols[4], "quantity")
    return [{"type": "order", **base, "order_id": f"yc:{offset}",
             "lines": [{"sku": sku, "quantity": max(1, int(qty)), "unit_price": price}],
             "currency": "EUR"}]


def _number(text: str, where: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise ValueError(f"{where}: not a number: {text!r:.40}") from None
    if not math.isfinite(x) or abs(x) > 1e12:
        raise ValueError(f"{where}: {text!r:.40} out of range")
    return x


def _retailrocket(line: bytes, offset: int) -> list[dict[str, Any]]:
    cols = _cols(line)
    if cols[0] == "timestamp":
        return []
    if len(cols) != 5:
        raise ValueError(f"expected 5 columns, got {len(cols)}")
    ts, visitor, kind, item, txn = cols
    visitor, item = _id(visitor, "visitorid"), _id(item, "itemid")
    base = {"event_id": f"rr:{offset}", "ts": _ms(ts), "user_id": visitor,
            "session_id": visitor}
    if kind == "view":
        return [{"type": "page_view", **base, "sku": item}]
    if kind == "addtocart":
        return [{"type": "add_to_cart", **base, "sku": item}]
    if kind == "transaction":
        return [{"type": "order", **base, "order_id": txn or f"rr:{offset}",
                 "lines": [{"sku": item, "quantity": 1, "unit_price": 0.0}], "currency": "EUR"}]
    raise ValueError(f"unknown event {kind!r:.40}")


def _movielens(line: bytes, offset: int) -> list[dict[str, Any]]:
    cols = _cols(line, None)
    if len(cols) != 4:
        raise ValueError(f"expected 4 columns, got {len(cols)}")
    user, item, rating, ts = cols
    base = {"ts": _ms(ts), "user_id": _id(user, "user"), "session_id": user,
            "sku": _id(item, "item")}
    out = [{"type": "page_view", "event_id": f"ml:{offset}", **base}]
    if _number(rating, "rating") >= 4:
        out.append({"type": "click", "event_id": f"ml:{offset}:c", **base})
    return out


def _diginetica(line: bytes, offset: int) -> list[dict[str, Any]]:
    """CIKM Cup 2016 (DIGINETICA) item views: ``sessionId;userId;itemId;timeframe;eventdate``
    (time = the day plus ``timeframe`` ms); the session is the key (``userId`` is mostly
    ``NA``)."""
    cols = _cols(line, ";")
    if cols[0] == "sessionId":
        return []  # header
    if len(cols) != 5:
        raise ValueError(f"expected 5 columns, got {len(cols)}")
    sess, _, item, frame, day = cols
    sess = _id(sess, "sessionId")
    if not frame.isdigit() or len(frame) > 12:
        raise ValueError(f"timeframe {frame!r:.40} is not a number of ms")
    ts = _iso_ms(day) + int(frame)
    if ts > MAX_TS_MS:
        raise ValueError(f"time {day!r:.20} + {frame!r:.20} out of range")
    return [{"type": "page_view", "event_id": f"dg:{offset}", "ts": ts, "user_id": sess,
             "session_id": sess, "sku": _id(item, "itemId")}]


DECODERS: dict[str, Callable[[bytes, int], list[dict[str, Any]]]] = {
    "diginetica": _diginetica,
    "otto": _otto,
    "yoochoose": _yoochoose,
    "retailrocket": _retailrocket,
    "movielens": _movielens,
}


def decode_record(fmt: str, value: bytes, offset: int) -> list[dict[str, Any]]:
    """Decode one raw record of a dataset format into Bespoke event dicts; any failure is a
    ``ValueError`` naming the format and the reason (never another exception)."""
    decoder = DECODERS.get(fmt)
    if decoder is None:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    if len(value) > MAX_RECORD_BYTES:
        raise ValueError(f"{fmt}: record of {len(value)} bytes exceeds {MAX_RECORD_BYTES}")
    try:
        return decoder(value, offset)
    except ValueError as e:  # UnicodeDecodeError included
        raise ValueError(f"{fmt}: {e}") from None
    except Exception as e:  # a decoder bug must not stop the flow: the reason says which
        raise ValueError(f"{fmt}: {type(e).__name__}: {e}") from None
