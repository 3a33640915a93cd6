"""Every decoder turns any bytes into events or one dead letter with a reason, never an
exception (issue: one malformed dataset line used to stop the whole run).

Each format gets thousands of generated inputs: arbitrary bytes, JSON documents shaped like
its records with hostile values (null, bool, nested, huge, non-finite numbers), and delimited
lines with hostile columns; plus the inputs that used to crash the flow.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.formats import FORMATS
from features.ingest import expand, ingest
from features.native import available
from features.validate import RawRecord, validate_record

FUZZ = settings(max_examples=2000, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# values a buggy or malicious producer may put anywhere
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
    st.sampled_from([0, 1, 1659304800, 1659304800123, -1, 2**63, "", " ", "clicks", "carts",
                     "orders", "page_view", "view", "addtocart", "transaction", "A1"]),
)
_json_values = st.recursive(
    _scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                      st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


@st.composite
def _otto_like(draw) -> bytes:
    event = st.fixed_dictionaries({}, optional={"aid": _json_values, "ts": _json_values,
                                                "type": _json_values})
    doc = draw(st.fixed_dictionaries({}, optional={
        "session": _json_values, "events": st.one_of(st.lists(event, max_size=4), _json_values)}))
    text = json.dumps(doc)
    if draw(st.booleans()):  # non-finite and overflowing numbers JSON writers let through
        text = text.replace("0", draw(st.sampled_from(["1e400", "NaN", "-Infinity", "0"])), 1)
    return text.encode()


@st.composite
def _native_like(draw) -> bytes:
    doc = draw(st.fixed_dictionaries({}, optional={
        k: _json_values for k in ("type", "event_id", "ts", "user_id", "session_id", "sku",
                                  "lines", "purposes", "action", "signature")}))
    if draw(st.booleans()):
        doc["type"] = draw(st.sampled_from(["page_view", "click", "order", "control",
                                            "catalog", "consent", "inventory", "price"]))
    return json.dumps(doc).encode()


_cell = st.one_of(st.text(max_size=12), st.sampled_from(
    ["1", "0", "-1", "nan", "inf", "1e400", "2014-04-07T10:51:09.277Z", "9999-12-31T23:59:59",
     "2016-05-09", "NA", "999999999999",
     "0001-01-01T00:00:00", "view", "addtocart", "transaction", "5", "", " "]))


@st.composite
def _delimited(draw) -> bytes:
    sep = draw(st.sampled_from([",", "\t", " ", ";"]))
    return sep.join(draw(st.lists(_cell, min_size=0, max_size=7))).encode(
        "utf-8", "surrogatepass")


_records = st.one_of(st.binary(max_size=200), _otto_like(), _native_like(), _delimited())


def _check(fmt: str, value: bytes, offset: int) -> None:
    events, dead = validate_record(RawRecord("fuzz", 0, offset, value, 0), fmt)
    assert not (events and dead)
    assert len(dead) <= 1
    if dead:
        assert dead[0].error and dead[0].offset == offset
    for ev in events:  # an accepted event meets its contract: ids are real ids
        for field in ("user_id", "sku", "session_id"):
            v = getattr(ev, field, "x")
            assert v is None or (isinstance(v, str) and v.strip() and v != "None")


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(value=_records, offset=st.integers(min_value=0, max_value=3))
def test_any_bytes_are_events_or_one_dead_letter(fmt, value, offset):
    _check(fmt, value, offset)


@pytest.mark.skipif(not available(), reason="bespoke_native is not built")
@settings(max_examples=1500, deadline=None, derandomize=True)
@given(values=st.lists(st.one_of(st.binary(max_size=120), _native_like()), max_size=6))
def test_native_fast_path_accounts_for_every_record(values):
    recs = [RawRecord("fuzz", 0, i, v, 0) for i, v in enumerate(values)]
    _, _, _, dead_native = expand(ingest(recs, "native", native=True))
    _, _, _, dead_python = expand(ingest(recs, "native", native=False))
    assert [d.offset for d in dead_native] == [d.offset for d in dead_python]


CRASHERS = [
    ("otto", b'{"session":1,"events":[5]}'),
    ("otto", b'{"session":1,"events":[{"aid":1,"ts":1e400,"type":"clicks"}]}'),
    ("otto", b'{"session":1,"events":[{"aid":null,"ts":1659304800,"type":"clicks"}]}'),
    ("otto", b'{"session":1,"events":[{"aid":[1],"ts":1659304800,"type":"clicks"}]}'),
    ("otto", b"[" * 100_000 + b"]" * 100_000),
    ("native", b"[" * 100_000 + b"]" * 100_000),
    ("yoochoose", b"123"),
    ("yoochoose", b"1,2014-04-07T10:51:09.277Z,1,inf,1e300"),
    ("retailrocket", b"1e400,1,view,2,"),
    ("movielens", b"1 2 x 4"),
    ("diginetica", b"1;NA;2;99999999999;9999-12-31"),
    ("diginetica", b"1;NA;2;-5;2016-05-09"),
    ("diginetica", b"1;NA;;5;2016-05-09"),
]


@pytest.mark.parametrize(("fmt", "value"), CRASHERS)
def test_known_crashers_are_dead_letters(fmt, value):
    events, dead = validate_record(RawRecord("f", 0, 7, value, 0), fmt)
    assert events == [] and len(dead) == 1 and dead[0].offset == 7


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("value", [b"", b"   ", b"\t \r"])
def test_blank_records_are_dead_letters_not_lost(fmt, value):
    events, dead = validate_record(RawRecord("f", 0, 3, value, 0), fmt)
    assert events == [] and dead[0].error.startswith("blank")
