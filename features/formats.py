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

A header line decodes to ``[]``; a malformed line raises ``ValueError`` (the caller turns it
into a dead letter with the reason).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

FORMATS = ("native", "otto", "yoochoose", "retailrocket", "movielens")


def _ms(ts: int | float) -> int:
    """Epoch seconds or milliseconds to milliseconds (values below 1e11 are seconds)."""
    ts = float(ts)
    return int(ts * 1000) if ts < 1e11 else int(ts)


def _otto(line: bytes, offset: int) -> list[dict]:
    obj = json.loads(line)
    if not isinstance(obj, dict) or "session" not in obj or not isinstance(obj.get("events"), list):
        raise ValueError("otto: expected an object with 'session' and a list 'events'")
    sess = str(obj["session"])
    out = []
    for i, e in enumerate(obj["events"]):
        kind = e.get("type")
        base = {"event_id": f"otto:{sess}:{i}", "ts": _ms(e["ts"]), "user_id": sess}
        sku = str(e["aid"])
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
            raise ValueError(f"otto: unknown event type {kind!r} at index {i}")
    return out


def _iso_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _yoochoose(line: bytes, offset: int) -> list[dict]:
    cols = line.decode().strip().split(",")
    if not cols or cols == [""]:
        return []
    sess = cols[0]
    if not sess.isdigit():
        if offset == 0:
            return []  # header
        raise ValueError(f"yoochoose: session id {sess!r} is not a number")
    base = {"event_id": f"yc:{offset}", "ts": _iso_ms(cols[1]), "user_id": sess,
            "session_id": sess, "sku": cols[2]}
    if len(cols) == 4:
        return [{"type": "click", **base}]
    if len(cols) == 5:
        sku = base.pop("sku")
        return [{"type": "order", **base, "order_id": f"yc:{offset}",
                 "lines": [{"sku": sku, "quantity": max(1, int(cols[4])),
                            "unit_price": float(cols[3])}], "currency": "EUR"}]
    raise ValueError(f"yoochoose: expected 4 (clicks) or 5 (buys) columns, got {len(cols)}")


def _retailrocket(line: bytes, offset: int) -> list[dict]:
    cols = line.decode().strip().split(",")
    if cols[0] == "timestamp":
        return []
    if len(cols) != 5:
        raise ValueError(f"retailrocket: expected 5 columns, got {len(cols)}")
    ts, visitor, kind, item, txn = cols
    base = {"event_id": f"rr:{offset}", "ts": _ms(int(ts)), "user_id": visitor,
            "session_id": visitor}
    if kind == "view":
        return [{"type": "page_view", **base, "sku": item}]
    if kind == "addtocart":
        return [{"type": "add_to_cart", **base, "sku": item}]
    if kind == "transaction":
        return [{"type": "order", **base, "order_id": txn or f"rr:{offset}",
                 "lines": [{"sku": item, "quantity": 1, "unit_price": 0.0}], "currency": "EUR"}]
    raise ValueError(f"retailrocket: unknown event {kind!r}")


def _movielens(line: bytes, offset: int) -> list[dict]:
    cols = line.decode().split()
    if len(cols) != 4:
        raise ValueError(f"movielens: expected 4 columns, got {len(cols)}")
    user, item, rating, ts = cols
    base = {"ts": _ms(int(ts)), "user_id": user, "session_id": user, "sku": item}
    out = [{"type": "page_view", "event_id": f"ml:{offset}", **base}]
    if int(rating) >= 4:
        out.append({"type": "click", "event_id": f"ml:{offset}:c", **base})
    return out


DECODERS: dict[str, Callable[[bytes, int], list[dict]]] = {
    "otto": _otto,
    "yoochoose": _yoochoose,
    "retailrocket": _retailrocket,
    "movielens": _movielens,
}


def decode_record(fmt: str, value: bytes, offset: int) -> list[dict]:
    """Decode one raw record of a dataset format into Bespoke event dicts."""
    try:
        return DECODERS[fmt](value, offset)
    except KeyError as e:
        if fmt not in DECODERS:
            raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}") from e
        raise ValueError(f"{fmt}: missing field {e}") from e
    except (TypeError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{fmt}: {e}") from e
