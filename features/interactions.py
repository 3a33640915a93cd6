"""Compact interaction tuples extracted from validated events.

Items that cross Bytewax workers are pickled one by one, so the keyed steps receive small
tuples rather than pydantic objects.

>>> from features.events import AddToCart
>>> ev = AddToCart(event_id="e", ts=5, user_id="u", session_id="s", sku="A", quantity=2)
>>> user_interaction(ev), item_interactions(ev)
(('u', 'add_to_cart', ('A',), 5, 'e'), [('A', 'add_to_cart', 2, 5)])
"""

from __future__ import annotations

from features.events import AddToCart, Click, Inbound, Order, PageView

# (user_id, kind, skus, ts, event_id)
UserInteraction = tuple[str, str, tuple[str, ...], int, str]
# (sku, kind, quantity, ts)
ItemInteraction = tuple[str, str, int, int]


def user_interaction(ev: Inbound) -> UserInteraction | None:
    if isinstance(ev, PageView | Click | AddToCart):
        return ev.user_id, ev.type, (ev.sku,), ev.ts, ev.event_id
    if isinstance(ev, Order):
        return ev.user_id, ev.type, tuple(line.sku for line in ev.lines), ev.ts, ev.event_id
    return None


def item_interactions(ev: Inbound) -> list[ItemInteraction]:
    if isinstance(ev, PageView | Click):
        return [(ev.sku, ev.type, 1, ev.ts)]
    if isinstance(ev, AddToCart):
        return [(ev.sku, ev.type, ev.quantity, ev.ts)]
    if isinstance(ev, Order):
        return [(line.sku, ev.type, line.quantity, ev.ts) for line in ev.lines]
    return []
