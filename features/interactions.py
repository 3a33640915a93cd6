"""Compact tuples that flow between the keyed feature steps.

Items crossing Bytewax workers are pickled one by one, so steps exchange plain tuples.

- ``item_inputs(event)``: what the item-keyed step receives (behaviour per sku, catalog,
  inventory, price), tagged by kind at index 1.
- ``user_inputs(event)``: what the user-keyed step receives straight from the validated
  stream (``UserEvent``, consent, erasure), in the order of the user's partition, so the
  decisions taken on them are deterministic under replay.
- the item step adds the item's catalog facts as an ``AffinityHint`` for the user step;
  affinities are order-independent decayed sums, so hints may arrive in any order.

>>> from features.events import AddToCart
>>> ev = AddToCart(event_id="e", ts=5, user_id="u", session_id="s", sku="A", quantity=2)
>>> item_inputs(ev)
[('A', 'add_to_cart', 5, 'u', 'e', 's', 2, 0.0)]
>>> user_inputs(ev)[0].lines
(('A', 2, 0.0),)
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from features.events import (
    AddToCart,
    CatalogItem,
    Click,
    Consent,
    Control,
    Inbound,
    Inventory,
    Order,
    PageView,
    Price,
)

BEHAVIOUR = ("page_view", "click", "add_to_cart", "order")


class UserEvent(NamedTuple):
    """A behaviour event as the user step sees it (an order carries all its lines)."""

    user_id: str
    kind: str
    ts: int
    event_id: str
    session_id: str
    lines: tuple[tuple[str, int, float], ...]  # (sku, quantity, unit price)
    order_id: str


class AffinityHint(NamedTuple):
    """Catalog facts of the item a user interacted with, from the item step."""

    user_id: str
    kind: str
    ts: int
    event_id: str
    category: str  # "" when the item is not in the catalog (yet)
    brand: str
    price_band: str
    attrs: tuple[str, ...]


_VIEWS = (PageView, Click)


def item_inputs(ev: Inbound) -> list[tuple[Any, ...]]:
    if isinstance(ev, _VIEWS):
        return [(ev.sku, ev.type, ev.ts, ev.user_id, ev.event_id, ev.session_id, 1, 0.0)]
    if isinstance(ev, AddToCart):
        return [(ev.sku, ev.type, ev.ts, ev.user_id, ev.event_id, ev.session_id, ev.quantity,
                 ev.unit_price or 0.0)]
    if isinstance(ev, Order):
        return [(ln.sku, "order", ev.ts, ev.user_id, ev.event_id, ev.session_id or "",
                 ln.quantity, ln.unit_price) for ln in ev.lines]
    if isinstance(ev, CatalogItem):
        attrs = tuple(sorted(f"{k}={v}" for k, v in ev.attributes.items()))
        options = json.dumps({"groups": [g.model_dump(exclude_none=True) for g in ev.option_groups],
                              "compatibility": [c.model_dump() for c in ev.compatibility]},
                             separators=(",", ":"), sort_keys=True) if ev.option_groups else ""
        return [(ev.sku, "catalog", ev.ts, "/".join(ev.category_path), ev.brand, ev.price,
                 ev.currency, attrs, ev.min_age, ",".join(ev.regions), options)]
    if isinstance(ev, Inventory):
        return [(ev.sku, "inventory", ev.ts, ev.location, ev.on_hand, ev.reserved)]
    if isinstance(ev, Price):
        return [(ev.sku, "price", ev.ts, ev.price, ev.list_price or ev.price, ev.currency)]
    return []


def user_inputs(ev: Inbound) -> list[tuple[Any, ...]]:
    """User-keyed inputs straight from the validated stream."""
    if isinstance(ev, _VIEWS):
        return [UserEvent(ev.user_id, ev.type, ev.ts, ev.event_id, ev.session_id,
                          ((ev.sku, 1, 0.0),), "")]
    if isinstance(ev, AddToCart):
        return [UserEvent(ev.user_id, ev.type, ev.ts, ev.event_id, ev.session_id,
                          ((ev.sku, ev.quantity, ev.unit_price or 0.0),), "")]
    if isinstance(ev, Order):
        return [UserEvent(ev.user_id, ev.type, ev.ts, ev.event_id, ev.session_id or "",
                          tuple((ln.sku, ln.quantity, ln.unit_price) for ln in ev.lines),
                          ev.order_id)]
    if isinstance(ev, Consent):
        return [(ev.user_id, "consent", ev.ts, ev.event_id, tuple(ev.purposes))]
    if isinstance(ev, Control) and ev.action == "erase_user" and ev.user_id:
        return [(ev.user_id, "erase", ev.ts, ev.event_id)]
    return []


PRICE_BANDS = ((10, "<10"), (25, "10-25"), (50, "25-50"), (100, "50-100"), (250, "100-250"))


def price_band(price: float) -> str:
    for limit, name in PRICE_BANDS:
        if price < limit:
            return name
    return "250+"
