import json
from pathlib import Path

import pytest

from features.events import AddToCart, Click, Order, PageView
from features.validate import RawRecord, validate_record

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "otto-sample"


def _rec(line: bytes, offset: int = 0, source: str = "f") -> RawRecord:
    return RawRecord(source, 0, offset, line, 0)


def test_otto_sample_maps_every_event():
    path = SHARED / "train-excerpt.jsonl"
    if not path.exists():
        pytest.skip("../shared/data/otto-sample is not beside this checkout")
    n_in = n_out = 0
    for i, line in enumerate(path.read_bytes().splitlines()):
        n_in += len(json.loads(line)["events"])
        events, dead = validate_record(_rec(line, i), "otto")
        assert dead == []
        n_out += len(events)
        assert all(isinstance(e, Click | AddToCart | Order) for e in events)
        assert all(e.ts > 1_600_000_000_000 for e in events)  # ms, event time kept
    assert n_in == n_out > 0


def test_otto_bad_type_is_dead_letter():
    line = b'{"session":1,"events":[{"aid":2,"ts":1659304800,"type":"likes"}]}'
    events, dead = validate_record(_rec(line, 3, "otto.jsonl"), "otto")
    assert events == [] and dead[0].offset == 3 and "likes" in dead[0].error


def test_yoochoose_clicks_and_buys():
    ev, dead = validate_record(_rec(b"1,2014-04-07T10:51:09.277Z,214536502,0", 1), "yoochoose")
    assert not dead and isinstance(ev[0], Click) and ev[0].sku == "214536502"
    assert ev[0].ts == 1396867869277
    ev, dead = validate_record(_rec(b"420374,2014-04-06T18:44:58.314Z,214537888,12462,1", 2),
                               "yoochoose")
    assert not dead and isinstance(ev[0], Order) and ev[0].lines[0].unit_price == 12462.0


def test_retailrocket_events():
    header = validate_record(_rec(b"timestamp,visitorid,event,itemid,transactionid"),
                             "retailrocket")
    assert header == ([], [])
    ev, _ = validate_record(_rec(b"1433221332117,257597,view,355908,", 1), "retailrocket")
    assert isinstance(ev[0], PageView) and ev[0].user_id == "257597"
    ev, _ = validate_record(_rec(b"1433224214164,992329,transaction,248676,4000", 2),
                            "retailrocket")
    assert isinstance(ev[0], Order) and ev[0].order_id == "4000"
    _, dead = validate_record(_rec(b"1433221332117,257597,stare,355908,", 3), "retailrocket")
    assert dead and "stare" in dead[0].error


def test_movielens_udata():
    ev, _ = validate_record(_rec(b"196\t242\t3\t881250949"), "movielens")
    assert [type(e) for e in ev] == [PageView] and ev[0].ts == 881250949000
    ev, _ = validate_record(_rec(b"186\t302\t5\t891717742", 1), "movielens")
    assert [type(e) for e in ev] == [PageView, Click]
    assert len({e.event_id for e in ev}) == 2
