"""Values read back from Redis: the shortcuts of ``connectors.redis_store._value`` give
exactly what trying ``int()``, then ``float()``, then the string gives."""

import math
import random

from connectors.redis_store import _decode, _value


def _reference(v: bytes):
    s = v.decode()
    try:
        return int(s)
    except ValueError:
        try:
            return float(s)
        except ValueError:
            return s


def test_value_shortcuts_agree_with_int_then_float_then_string():
    rnd = random.Random(5)
    alphabet = "0123456789.-+eE_ inaIfNtyx/:,é٣\t#"
    samples = [b"", b"-", b"1_000", b" 12 ", b"inf", b"-Infinity", b"nan", b"Nan", b"1e5",
               b"1.5", b".5", b"5.", "٣".encode(), b"0x10", b"12abc", b"EUR", b"bikes/road",
               b"brand-3", b"S1:1.0000,S2:0.5000", b"1700000000000"]
    samples += ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 6))).encode()
                for _ in range(100_000)]
    for v in samples:
        a, b = _reference(v), _value(v)
        assert type(a) is type(b), v
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), v


def test_decode_skips_the_view_timestamps():
    assert _decode({b"_ts:item_price_v1": b"5", b"item_price_v1.price": b"9.5",
                    b"item_catalog_v2.brand": b"b1"}) == {"item_price_v1.price": 9.5,
                                                          "item_catalog_v2.brand": "b1"}
