"""scripts.sessions_like: every line decodes as a YOOCHOOSE click, keyed by session."""

from features.validate import RawRecord, validate_record
from scripts.sessions_like import lines


def test_lines_decode_as_session_keyed_clicks() -> None:
    text = lines(seed=1, events=2000, items=200, users=100)
    assert text[0].startswith("session_id,")
    keys, dead = set(), 0
    for off, line in enumerate(text):
        evs, bad = validate_record(RawRecord("x", 0, off, line.encode(), 0), "yoochoose")
        dead += len(bad)
        keys.update(e.user_id for e in evs)
    assert dead == 0
    assert len(text) > 1500  # views, clicks and cart adds
    assert len(keys) > 100  # more sessions than users: a key per session
    assert lines(seed=1, events=2000, items=200, users=100) == text
