"""``flows evaluate``: deterministic, and the replay pack gives personalized feeds on every
dataset format."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.generator import GenConfig, Generator, write_jsonl
from flows.evaluate import evaluate
from flows.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
OTTO = ROOT.parent / "shared" / "data" / "otto-sample" / "train-excerpt.jsonl"
TIMING = ("events_per_s", "read_s", "replay_s")


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("ev") / "events.jsonl"
    write_jsonl(str(p), Generator(GenConfig(seed=5, users=300, items=200,
                                            events=6000)).records())
    return p


def _strip(res: dict) -> dict:
    return {k: v for k, v in res.items() if k not in TIMING}


def test_evaluate_is_deterministic(generated):
    s = Settings(_env_file=None)
    a = evaluate([str(generated)], "native", (5, 10), s)
    b = evaluate([str(generated)], "native", (5, 10), s)
    assert _strip(a) == _strip(b)
    assert a["targets"] > 1000 and a["results"]["bespoke"]["hr@10"] > 0.1
    assert set(a["results"]) == {"bespoke", "most_popular", "decayed_popular",
                                 "last_item_covis", "recent_then_covis", "session_knn",
                                 "sequential_rules"}
    # the decisions no later event scores are skipped: making them changes nothing
    every = evaluate([str(generated)], "native", (5, 10), s, baselines=[], decide_all=True)
    assert every["results"]["bespoke"] == a["results"]["bespoke"]


def test_native_folds_and_kernels_evaluate_as_the_python_ones(tmp_path):
    """The replay's item, user and co-visitation folds in native shards (and the native
    retrieval and ranking kernels) give the numbers of the Python reference."""
    path = tmp_path / "events.jsonl"
    write_jsonl(str(path), Generator(GenConfig(seed=8, users=150, items=120,
                                               events=2500)).records())
    py = evaluate([str(path)], "native", (5, 10), Settings(_env_file=None,
                                                          native_kernels=False),
                  baselines=[])
    native = evaluate([str(path)], "native", (5, 10), Settings(_env_file=None), baselines=[])
    assert native["results"] == py["results"] and py["targets"] > 400


def _dataset_files(d: Path) -> dict[str, Path]:
    """Small files in each dataset format (their structure; not their statistics)."""
    rnd = random.Random(1)
    items = [str(1000 + i) for i in range(60)]

    def pick(s: int) -> str:
        return rnd.choice(items[:20] if s % 2 else items[20:])

    yc, rr, ml, dg = d / "yc.dat", d / "rr.csv", d / "ml.data", d / "dg.csv"
    with yc.open("w") as f:
        for s in range(200):
            for j in range(rnd.randint(2, 6)):
                f.write(f"{s + 1},2014-04-0{1 + s % 9}T10:{j:02d}:00.000Z,{pick(s)},0\n")
    with rr.open("w") as f:
        f.write("timestamp,visitorid,event,itemid,transactionid\n")
        for s in range(200):
            for j in range(rnd.randint(2, 6)):
                f.write(f"{1433221332000 + s * 600000 + j * 30000},{s},view,{pick(s)},\n")
    with ml.open("w") as f:
        for u in range(60):
            for j in range(12):
                f.write(f"{u + 1}\t{pick(u)}\t{rnd.randint(1, 5)}\t{881250949 + u * 1000 + j}\n")
    with dg.open("w") as f:
        f.write("sessionId;userId;itemId;timeframe;eventdate\n")
        for s in range(200):
            for j in range(rnd.randint(2, 6)):
                f.write(f"{s + 1};NA;{pick(s)};{j * 30000};2016-05-{1 + s % 28:02d}\n")
    return {"yoochoose": yc, "retailrocket": rr, "movielens": ml, "diginetica": dg}


def test_the_replay_pack_personalizes_every_dataset_format(tmp_path):
    """No consent, catalog or stock in these files: the replay pack still serves feeds (the
    default pack would serve none), and with --exclude-seen a seen item is never a hit."""
    s = Settings(_env_file=None)
    for fmt, path in _dataset_files(tmp_path).items():
        res = evaluate([str(path)], fmt, (10,), s, baselines=[])
        feed = res["results"]["bespoke"]
        assert res["dead_letters"] == 0, fmt
        assert feed["evaluated"] > 100 and feed["hr@10"] > 0.05, (fmt, feed)
        strict = evaluate([str(path)], fmt, (10,), s, policy="default", baselines=[])
        assert strict["results"]["bespoke"]["hr@10"] == 0.0, fmt  # no consent: no feed
    ml = _dataset_files(tmp_path)["movielens"]
    res = evaluate([str(ml)], "movielens", (10,), s, exclude_seen=True)
    assert res["exclude_seen"] and res["results"]["bespoke"]["hr@10"] > 0


@pytest.mark.skipif(not OTTO.exists(), reason="../shared/data/otto-sample is not beside this "
                                               "checkout")
def test_cli_evaluates_the_otto_sample(tmp_path):
    out = tmp_path / "otto.json"
    got = subprocess.run([sys.executable, "-m", "flows", "evaluate", "--input", str(OTTO),
                          "--format", "otto", "--k", "10", "20", "--out", str(out), "--quiet"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr[-2000:]
    assert "recommender" in got.stdout and "bespoke" in got.stdout
    res = json.loads(out.read_text())
    assert res["targets"] > 500 and res["results"]["bespoke"]["hr@20"] > 0.1
    assert res["session_knn"]  # on in evaluations unless --session-knn off


def test_the_learned_ranker_beats_its_heuristic_fallback(generated):
    """Same events, same candidates: the River ranker, learning from each next item,
    ranks them better than the hand-weighted sum it starts from (deterministic numbers)."""
    s = Settings(_env_file=None)
    heuristic = evaluate([str(generated)], "native", (10,), s, baselines=[], learned=False)
    learned = evaluate([str(generated)], "native", (10,), s, baselines=[])
    h, lr = heuristic["results"]["bespoke"], learned["results"]["bespoke"]
    assert learned["model_version"].startswith("river-logreg+relu32-v2+")
    assert lr["hr@10"] > h["hr@10"] and lr["mrr@10"] > h["mrr@10"], (h, lr)


def test_run_with_the_replay_policy_personalizes_a_dataset(tmp_path):
    """`run --format movielens --policy replay`: feeds for users who never gave consent,
    of items with no catalog or stock (the default pack sends only empty, non-personalized
    ones)."""
    from connectors.file_sink import read_channel

    ml = _dataset_files(tmp_path)["movielens"]
    feeds = {}
    for policy in ("replay", "default"):
        out = tmp_path / f"out-{policy}"
        got = subprocess.run([sys.executable, "-m", "flows", "run", "--input", str(ml),
                              "--format", "movielens", "--output", str(out), "--store",
                              "memory", "--policy", policy], cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
        assert got.returncode == 0, got.stderr[-2000:]
        feeds[policy] = [json.loads(b) for b in read_channel(out, "feed_updates")]
    assert len(feeds["replay"]) > 50 and all(f["items"] for f in feeds["replay"])
    assert all(f["policy_version"].startswith("replay@") for f in feeds["replay"])
    assert feeds["default"] and all(not f["items"] and f["model_version"] == "non-personalized"
                                    for f in feeds["default"])


def test_run_with_exclude_seen_never_recommends_what_the_user_just_rated(tmp_path):
    """`run --exclude-seen` (ratings data): a feed never holds the item its trigger rated,
    nor the user's two ratings before it; without the flag, such feeds exist."""
    from connectors.file_sink import read_channel

    ml = _dataset_files(tmp_path)["movielens"]
    lines = [line.split("\t") for line in ml.read_text().splitlines()]

    def just_rated(event_id: str) -> set[str]:
        """The item the trigger (``ml:<line>``) rated and the user's two ratings before."""
        at = int(event_id.split(":")[1])
        user = lines[at][0]
        mine = [x[1] for x in lines[:at + 1] if x[0] == user]
        return set(mine[-3:])
    offending = {}
    for flag in (["--exclude-seen"], []):
        out = tmp_path / f"out{len(flag)}"
        got = subprocess.run([sys.executable, "-m", "flows", "run", "--input", str(ml),
                              "--format", "movielens", "--output", str(out), "--store",
                              "memory", "--policy", "replay", *flag], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
        assert got.returncode == 0, got.stderr[-2000:]
        feeds = [json.loads(b) for b in read_channel(out, "feed_updates")]
        assert len(feeds) > 50
        bad = 0
        for f in feeds:
            bad += bool({i["sku"] for i in f["items"]} & just_rated(f["trigger_event_id"]))
        offending[bool(flag)] = bad
    assert offending[True] == 0 and offending[False] > 0, offending


def test_periods_split_the_same_targets_in_event_time(generated):
    """``periods=2``: every target is scored in exactly one period, the periods' hits add up
    to the whole run's, and the overall numbers do not change."""
    s = Settings(_env_file=None)
    whole = evaluate([str(generated)], "native", (10,), s)
    split = evaluate([str(generated)], "native", (10,), s, periods=2)
    assert _strip({**split, "periods": None}) == _strip({**whole, "periods": None})
    first, second = split["periods"]
    assert first["to_ts"] + 1 == second["from_ts"] and first["targets"] > 0 < second["targets"]
    assert first["targets"] + second["targets"] == whole["targets"]
    for name, r in whole["results"].items():
        n = [p["results"][name]["evaluated"] for p in (first, second)]
        assert sum(n) == r["evaluated"]
        hits = sum(p["results"][name]["hr@10"] * m for p, m in zip((first, second), n,
                                                                  strict=True))
        assert abs(hits - r["hr@10"] * r["evaluated"]) < 1.0, name  # rounding only
