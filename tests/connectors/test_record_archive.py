"""The Parquet archive of decision records: journaled per batch, written in the background."""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors import record_archive
from connectors.record_archive import (
    SCHEMA,
    ArchiveWriteFailed,
    _ArchivePartition,
    journal_table,
    read_archive,
)
from features.channels import DECISION_RECORDS
from features.events import DecisionRecord, Outgoing, event_doc, outgoing_doc

ROOT = Path(__file__).resolve().parents[2]


def _record(i: int) -> Outgoing:
    doc = event_doc(DecisionRecord, id=f"rec:feed:u{i % 7}:e{i}", ts=1_700_000_000_000 + i,
                    decision_id=f"feed:u{i % 7}:e{i}", decision_type="feed_update",
                    suppressed=False, user_ref="ab" * 16, trigger_event_id=f"e{i}",
                    goal="refresh_feed", plan="feed-candidates", plan_version="2",
                    model_version="m1", tool_calls=[{"tool": "covis_candidates",
                                                     "inputs": {"items": ["A"]},
                                                     "outcome": "ok", "latency_ms": 0.01,
                                                     "breaker_state": "closed"}],
                    features={"candidates": 3}, policy_pack="default", policy_version="1",
                    verdicts=[], output={"items": ["A", "B"]}, explanation=f"because {i}")
    return outgoing_doc(DECISION_RECORDS.name, f"u{i % 7}", doc)


def _other(i: int) -> Outgoing:
    return Outgoing("feed_updates", b"u", b"{}", f"feed:{i}")


NATIVE = [True, pytest.param(False, id="python")] if record_archive._native else [False]


@pytest.mark.parametrize("native", NATIVE)
def test_files_rotate_in_order_and_journals_go_when_written(tmp_path, native):
    part = _ArchivePartition(tmp_path, worker=0, rows_per_file=100, native=native)
    sent = [_record(i) for i in range(350)]
    for i in range(0, 350, 7):  # batches of 7 records with other channels between
        part.write_batch([x for r in sent[i:i + 7] for x in (r, _other(i))])
    part.close()
    files = sorted(p.name for p in tmp_path.glob("part-*.parquet"))
    assert files == [f"part-0-{n:06d}.parquet" for n in range(4)]
    rows = read_archive(tmp_path).to_pylist()
    assert [r["id"] for r in rows] == [r.id for r in sent]  # each once, in order
    assert rows[5]["tool_calls"] == orjson.dumps(sent[5].doc["tool_calls"]).decode()
    assert rows[5]["explanation"] == "because 5"
    assert not list(tmp_path.glob(".journal-*")) and not list(tmp_path.glob(".*.tmp"))


def test_every_batch_is_journaled_before_the_next(tmp_path):
    part = _ArchivePartition(tmp_path, worker=3, rows_per_file=1000)
    part.write_batch([_record(i) for i in range(5)])
    (journal,) = tmp_path.glob(".journal-3-*.jsonl")
    lines = journal.read_bytes().splitlines()
    assert [orjson.loads(x)["id"] for x in lines] == [_record(i).id for i in range(5)]
    assert not list(tmp_path.glob("part-*"))  # nothing written to Parquet yet
    part.close()


def test_a_killed_worker_loses_no_record(tmp_path):
    """A process writes batches and is killed with SIGKILL (no close, no flush at exit);
    the next partition of that worker writes what its journal holds first."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from tests.connectors.test_record_archive import _record
        from connectors.record_archive import _ArchivePartition
        part = _ArchivePartition(Path({str(tmp_path)!r}), worker=1, rows_per_file=100)
        for i in range(0, 250, 10):
            part.write_batch([_record(j) for j in range(i, i + 10)])
        part._wait()  # the two full files are written; 50 records are only journaled
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT)
    assert proc.returncode == -signal.SIGKILL
    assert read_archive(tmp_path).num_rows == 200
    assert len(list(tmp_path.glob(".journal-1-*.jsonl"))) == 1

    part = _ArchivePartition(tmp_path, worker=1, rows_per_file=100)  # the restarted worker
    ids = [r["id"] for r in read_archive(tmp_path).to_pylist()]
    assert ids == [_record(i).id for i in range(250)]
    part.write_batch([_record(i) for i in range(250, 260)])
    part.close()
    assert read_archive(tmp_path).num_rows == 260
    assert not list(tmp_path.glob(".journal-*"))


@pytest.mark.parametrize("native", NATIVE)
def test_a_line_cut_short_by_a_kill_is_skipped_and_said(tmp_path, native, caplog):
    journal = tmp_path / ".journal-0-000004.jsonl"
    journal.write_bytes(_record(1).value + b"\n" + _record(2).value + b"\n"
                        + _record(3).value[:40])
    with caplog.at_level("WARNING", logger="connectors.record_archive"):
        part = _ArchivePartition(tmp_path, worker=0, rows_per_file=100, native=native)
    assert [r["id"] for r in read_archive(tmp_path).to_pylist()] == [_record(1).id,
                                                                    _record(2).id]
    assert "1 line(s) of .journal-0-000004.jsonl are not JSON" in caplog.text
    caplog.clear()
    part.write_batch([_record(9)])
    part.close()
    assert "not JSON" not in caplog.text  # a whole journal: nothing to say
    assert read_archive(tmp_path).num_rows == 3
    assert not list(tmp_path.glob(".journal-0-000004.jsonl"))  # the next journal is 5


def test_a_failed_background_write_stops_the_flow(tmp_path, monkeypatch):
    def broken(*_a, **_k):
        raise OSError("disk full")

    part = _ArchivePartition(tmp_path, worker=0, rows_per_file=10)
    monkeypatch.setattr(record_archive.pq, "write_table", broken)
    part.write_batch([_record(i) for i in range(10)])  # a full file: a background write
    part._writer.join()  # it has failed by now
    with pytest.raises(ArchiveWriteFailed, match="disk full"):
        part.write_batch([_record(10)])  # not taken: the flow stops, recovery replays it
    # the records of the failed file are still in their journal, for the next start
    (journal,) = [j for j in tmp_path.glob(".journal-0-*.jsonl") if j.stat().st_size]
    assert len(journal.read_bytes().splitlines()) == 10
    assert not list(tmp_path.glob("part-*"))
    monkeypatch.undo()
    _ArchivePartition(tmp_path, worker=0, rows_per_file=10).close()  # the next start
    assert read_archive(tmp_path).num_rows == 10


# ------------------------------------------------------------------ native = reference
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_json = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | _text
                     | st.floats(allow_nan=False, allow_infinity=False),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(_text, c, max_size=3),
                     max_leaves=8)
_FIELD = {"str": st.none() | _text, "int": st.none() | st.integers(-2**63, 2**63 - 1),
          "bool": st.none() | st.booleans(), "json": _json}
_docs = st.fixed_dictionaries({}, optional={
    f.name: _FIELD["json" if f.name in record_archive._JSON else
                   "int" if f.name == "ts" else "bool" if f.name == "suppressed" else "str"]
    for f in SCHEMA})


@pytest.mark.skipif(not record_archive._native, reason="bespoke_native is not built")
@settings(max_examples=150, deadline=None)
@given(st.lists(_docs, max_size=8), st.booleans())
def test_the_native_journal_conversion_equals_the_reference(docs, cut):
    """Any record shape (missing fields, nulls, escapes, non-ASCII text, nested values of
    every JSON type): the same table, field for field, with or without a cut last line."""
    data = b"".join(orjson.dumps(d) + b"\n" for d in docs)
    if cut:
        data += b'{"id": "cut sh'
    native, ref = journal_table(data, native=True), journal_table(data, native=False)
    assert native.num_rows == ref.num_rows == len(docs)
    assert native.to_pylist() == ref.to_pylist()
    assert native.equals(ref)


@pytest.mark.skipif(not record_archive._native, reason="bespoke_native is not built")
def test_real_records_convert_alike_and_wrong_types_go_to_the_reference():
    data = b"".join(_record(i).value + b"\n" for i in range(300))
    assert journal_table(data, native=True).equals(journal_table(data, native=False))
    bad = b'{"id": "rec:x", "ts": "not a number"}\n'
    with pytest.raises((TypeError, ValueError)):  # the reference's own error (pyarrow's)
        journal_table(bad, native=True)
