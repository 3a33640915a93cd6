"""The README commands' building blocks: `python -m flows demo|generate|run`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OTTO = ROOT.parent / "shared" / "data" / "otto-sample" / "train-excerpt.jsonl"


KEY = {"BESPOKE_PSEUDONYM_KEY": "cli-test-pseudonym-key"}


def _flows(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = KEY if env is None else env
    return subprocess.run([sys.executable, "-m", "flows", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={"PATH": "/usr/bin:/bin",
                                                       "PYTHONPATH": str(ROOT), **env})


def test_demo_writes_outputs_and_report(tmp_path):
    out = tmp_path / "out"
    r = _flows("demo", "--out", str(out), "--events", "3000", "--malformed-rate", "0.05")
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["dead_letters"] == report["input_by_type"]["malformed"] > 0
    assert report["feed_updates"] > 0 and report["duplicate_feed_ids"] == 0
    assert report["store"]["user"] >= report["users_with_feeds"] > 0
    assert report["decision_records"] == (report["feed_updates"] + report["offers"]
                                          + report["configurations"]
                                          + report["suppressed_decisions"]
                                          + report["unchanged_decisions"])
    assert report["unchanged_decisions"] > 0  # recorded too: one record per decision
    assert report["offers"] > 0 and report["configurations"] > 0
    from connectors.record_archive import read_archive

    assert read_archive(out / "archive").num_rows == report["decision_records"]
    assert report["policy_denials_by_rule"]  # the default pack filtered something
    assert (out / "features" / "item.jsonl").stat().st_size > 0
    assert "Bespoke run summary" in r.stdout


def test_the_default_demo_shows_its_flip_as_an_alert_a_fallback_and_a_recovery(tmp_path):
    """`make demo` as it is (50k events, flip at 0.75): the ranker's CTR alert sends it to
    fallback after the flip, its loss brings it back, and the report counts both."""
    out = tmp_path / "out"
    r = _flows("demo", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["drift_alerts"].get("fallback", 0) >= 1, report["drift_alerts"]
    assert report["drift_alerts"].get("recovered", 0) >= 1, report["drift_alerts"]
    alerts = [json.loads(x) for f in sorted((out / "drift_alerts").iterdir())
              for x in f.read_text().splitlines() if x.strip()]
    ts = []
    for line in (out / "events.jsonl").read_bytes().splitlines():
        try:
            e = json.loads(line)
        except ValueError:  # a malformed one
            continue
        if isinstance(e, dict) and isinstance(e.get("ts"), int) and e.get("type") in (
                "page_view", "click", "add_to_cart", "order"):
            ts.append(e["ts"])
    flip_ts = ts[int(0.75 * len(ts))]  # about where the flip starts
    fallback = [a for a in alerts if a["action"] == "fallback"]
    back = [a for a in alerts if a["action"] == "recovered" and a["monitor"].startswith("feed")]
    assert fallback and all(a["ts"] > flip_ts - 60_000 for a in fallback), (flip_ts, fallback)
    assert back and back[0]["ts"] > fallback[0]["ts"]
    assert (out / "dashboard.html").stat().st_size > 10_000


def test_generate_then_run_otto_format(tmp_path):
    if not OTTO.exists():
        pytest.skip("../shared is not beside this checkout")
    r = _flows("run", "--input", str(OTTO), "--format", "otto", "--output", str(tmp_path),
               "--store", "memory")
    assert r.returncode == 0, r.stderr[-2000:]
    assert not (tmp_path / "dead_letters").exists()
    assert list((tmp_path / "feed_updates").glob("part-*.jsonl"))


def test_secrets_are_not_logged(tmp_path):
    events = tmp_path / "e.jsonl"
    assert _flows("generate", "--out", str(events), "--events", "50").returncode == 0
    r = subprocess.run([sys.executable, "-m", "flows", "run", "--input", str(events), "--output",
                        str(tmp_path / "o"), "--store", "memory"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                            "BESPOKE_PSEUDONYM_KEY": "s3cr3t-key-0123456789",
                            "REDIS_URL": "redis://:hunter2@127.0.0.1:1/0"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "settings:" in r.stderr
    assert "s3cr3t-key" not in r.stdout + r.stderr and "hunter2" not in r.stdout + r.stderr


@pytest.mark.parametrize("key", [None, "change-me", "short"])
def test_run_refuses_a_missing_or_default_pseudonym_key(tmp_path, key):
    events = tmp_path / "e.jsonl"
    assert _flows("generate", "--out", str(events), "--events", "20").returncode == 0
    r = _flows("run", "--input", str(events), "--output", str(tmp_path / "o"), "--store",
               "memory", env={} if key is None else {"BESPOKE_PSEUDONYM_KEY": key})
    assert r.returncode == 2 and "BESPOKE_PSEUDONYM_KEY" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "o").exists()


def test_sign_control_then_run_applies_it_and_audits(tmp_path):
    keys = json.dumps({"ops-1": {"secret": "ops-secret-0123456789", "issuer": "ops",
                                 "actions": ["erase_user"]}})
    env = {**KEY, "BESPOKE_CONTROL_KEYS": keys}
    events = tmp_path / "e.jsonl"
    assert _flows("generate", "--out", str(events), "--events", "300").returncode == 0
    user = next(json.loads(x)["user_id"] for x in events.read_text().splitlines()
                if '"page_view"' in x)
    req = json.dumps({"type": "control", "event_id": "c1", "ts": 1, "action": "erase_user",
                      "user_id": user})
    signed = subprocess.run([sys.executable, "-m", "flows", "sign-control", "--key-id",
                             "ops-1"], input=req + "\n", cwd=ROOT, capture_output=True,
                            text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env})
    assert signed.returncode == 0, signed.stderr
    ctl = tmp_path / "controls.jsonl"
    ctl.write_text(signed.stdout)
    r = _flows("run", "--input", str(events), "--controls", str(ctl), "--output",
               str(tmp_path / "o"), "--store", "memory", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    audit = [json.loads(x) for x in (tmp_path / "o" / "control_audit").glob("*.jsonl")
             for x in x.read_text().splitlines()]
    assert [(a["control_event_id"], a["outcome"]) for a in audit] == [("c1", "accepted")]
    assert "ops-secret" not in r.stderr + r.stdout
