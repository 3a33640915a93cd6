"""Expected results computed straight from generated records (independently of the flow)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections import Counter
from pathlib import Path

from connectors.generator import GenRecord
from features.definitions import ITEM_POPULARITY, USER_RECENCY
from policies.privacy import decision_id, pseudonymize

BEHAVIOUR = ("page_view", "click", "add_to_cart", "order")


def expected_counts(records: list[GenRecord]) -> tuple[Counter, Counter, int]:
    """(events per user, item interactions per sku, malformed count)."""
    users: Counter = Counter()
    items: Counter = Counter()
    malformed = 0
    for r in records:
        if r.malformed:
            malformed += 1
            continue
        if r.type not in BEHAVIOUR:
            continue
        body = json.loads(r.value)
        users[body["user_id"]] += 1
        if r.type == "order":
            for line in body["lines"]:
                items[line["sku"]] += 1
        else:
            items[body["sku"]] += 1
    return users, items, malformed


def check_feed_ids(feeds: list[dict]) -> None:
    """Every feed update is unique, or a replay carrying the same deterministic id (for the
    same user and trigger event; decisions read the store, so a replay may pick other
    items: consumers keep the first of an id)."""
    by_id: dict[str, dict] = {}
    for f in feeds:
        key = os.environ["BESPOKE_PSEUDONYM_KEY"].encode()
        assert f["id"] == decision_id("feed", pseudonymize(f["user_id"], key),
                                      f["trigger_event_id"])
        assert f["user_id"] not in f["id"]
        prev = by_id.setdefault(f["id"], f)
        assert (prev["user_id"], prev["trigger_event_id"]) == (f["user_id"],
                                                              f["trigger_event_id"])


ITEM_COUNT = ITEM_POPULARITY.column("n_events")
USER_COUNT = USER_RECENCY.column("n_events")


def counts_in_store(store, entity: str, keys, field: str) -> dict:
    """{key: field value} read back from an online store (None where the key is absent)."""
    keys = list(keys)
    return {k: (row or {}).get(field) for k, row in zip(keys, store.read_many(entity, keys),
                                                         strict=True)}


def committed_epoch(rec: Path) -> int:
    """The newest epoch a flow's recovery store (``--recovery-dir``) has committed (0: none
    yet)."""
    best = 0
    for db in Path(rec).glob("part-*.sqlite3"):
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2) as c:
                row = c.execute("select max(commit_epoch) from commits").fetchone()
            best = max(best, row[0] or 0)
        except sqlite3.Error:
            pass
    return best
