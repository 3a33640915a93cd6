import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from features.events import (
    ALL_MODELS,
    MAX_EVENT_BYTES,
    Order,
    PageView,
    parse_inbound,
    to_json_bytes,
)

ROOT = Path(__file__).resolve().parents[2]


def _view(**kw):
    base = {"type": "page_view", "schema_version": 1, "event_id": "e1", "ts": 1_700_000_000_000,
            "user_id": "u1", "session_id": "s1", "sku": "A"}
    base.update(kw)
    return json.dumps(base).encode()


def test_valid_view_round_trips():
    ev = parse_inbound(_view())
    assert isinstance(ev, PageView)
    assert parse_inbound(to_json_bytes(ev)) == ev


@pytest.mark.parametrize("bad", [
    _view(ts="yesterday"),          # wrong type (strict: no coercion from str)
    _view(ts=-1),                    # out of range
    _view(event_id="x" * 129),       # too long
    _view(type="telepathy"),         # unknown type
    _view(extra_field=1),            # unknown field
    _view(schema_version=2),         # unsupported version
    _view(user_id=""),               # empty id
    b'{"type": "page_view"',         # truncated
])
def test_invalid_events_rejected(bad):
    with pytest.raises((ValidationError, ValueError)):
        parse_inbound(bad)


def test_size_limit():
    with pytest.raises(ValueError, match="exceeds"):
        parse_inbound(b" " * (MAX_EVENT_BYTES + 1))


def test_order_lines_and_currency():
    raw = json.dumps({"type": "order", "event_id": "o", "ts": 1, "user_id": "u", "order_id": "o1",
                      "currency": "EUR", "lines": [{"sku": "A", "quantity": 2,
                                                    "unit_price": 3.5}]})
    ev = parse_inbound(raw)
    assert isinstance(ev, Order) and ev.lines[0].quantity == 2
    with pytest.raises(ValidationError):
        parse_inbound(raw.replace("EUR", "euro"))
    with pytest.raises(ValidationError):
        parse_inbound(raw.replace('"quantity": 2', '"quantity": 0'))


def test_exported_json_schemas_are_current():
    """schemas/*.json are the contract other teams code against: regenerate with make schemas."""
    from scripts.export_schemas import render

    expected = render()
    found = {p.name: p.read_text() for p in (ROOT / "schemas").glob("*.v1.json")}
    assert set(found) == set(expected), "run: make schemas"
    for name, text in expected.items():
        assert found[name] == text, f"{name} is stale: run make schemas"
    assert len(expected) == len(ALL_MODELS)
