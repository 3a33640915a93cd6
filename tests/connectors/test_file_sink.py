"""The JSONL file sink cuts its files back to the last committed epoch on resume."""

from pathlib import Path

from connectors.file_sink import JsonlDirSink, read_channel
from features.events import Outgoing


def _line(channel: str, n: int) -> Outgoing:
    return Outgoing(channel, b"k", b'{"id":"%d"}' % n, str(n))


def test_resume_cuts_torn_and_uncommitted_lines(tmp_path: Path):
    sink = JsonlDirSink(tmp_path, recovered=True)
    part = sink.build_part("sink", "w00000", None)
    part.write_batch([_line("feed", 1), _line("feed", 2)])
    committed = part.snapshot()
    part.write_batch([_line("feed", 3), _line("offers", 4)])  # after the commit
    part.close()
    with open(tmp_path / "feed" / "part-0.jsonl", "ab") as f:
        f.write(b'{"id":"5","cut')  # a write torn by kill -9

    resumed = JsonlDirSink(tmp_path, recovered=True).build_part("sink", "w00000", committed)
    assert read_channel(tmp_path, "feed") == [b'{"id":"1"}', b'{"id":"2"}']
    assert read_channel(tmp_path, "offers") == []  # not written at the commit
    resumed.write_batch([_line("feed", 3), _line("offers", 4)])
    resumed.close()
    assert read_channel(tmp_path, "feed") == [b'{"id":"1"}', b'{"id":"2"}', b'{"id":"3"}']
    assert read_channel(tmp_path, "offers") == [b'{"id":"4"}']


def test_without_recovery_a_run_appends(tmp_path: Path):
    (tmp_path / "feed").mkdir()
    (tmp_path / "feed" / "part-0.jsonl").write_bytes(b'{"id":"old"}\n')
    (tmp_path / "feed" / "part-1.jsonl").write_bytes(b'{"id":"other"}\n')
    part = JsonlDirSink(tmp_path).build_part("sink", "w00000", None)
    part.write_batch([_line("feed", 1)])
    assert part.snapshot() == {"feed": len(b'{"id":"old"}\n{"id":"1"}\n')}
    part.close()
    assert read_channel(tmp_path, "feed") == [b'{"id":"old"}', b'{"id":"1"}',
                                              b'{"id":"other"}']


def test_with_recovery_and_nothing_committed_a_partition_starts_empty(tmp_path: Path):
    for worker in (0, 1):  # left by a run killed before its first commit
        (tmp_path / "feed").mkdir(exist_ok=True)
        (tmp_path / "feed" / f"part-{worker}.jsonl").write_bytes(b'{"id":"%d"}\n' % worker)
    sink = JsonlDirSink(tmp_path, recovered=True)
    sink.build_part("sink", "w00001", None)
    assert read_channel(tmp_path, "feed") == [b'{"id":"0"}']
    sink.build_part("sink", "w00000", {"feed": 3})  # worker 0 had committed 3 bytes
    assert (tmp_path / "feed" / "part-0.jsonl").read_bytes() == b'{"i'
    assert (tmp_path / "feed" / "part-1.jsonl").read_bytes() == b""


def test_a_line_without_its_newline_is_not_read(tmp_path: Path):
    """A reader of a live or killed run's files sees complete lines only: the last one,
    still being written or torn by a kill, is left out until its newline is there."""
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "part-0.jsonl").write_bytes(b'{"a":1}\n{"b":2}\n{"c":')
    (tmp_path / "c" / "part-1.jsonl").write_bytes(b'{"e":')
    assert read_channel(tmp_path, "c") == [b'{"a":1}', b'{"b":2}']
    (tmp_path / "c" / "part-1.jsonl").write_bytes(b'{"e":1}\n')
    assert read_channel(tmp_path, "c") == [b'{"a":1}', b'{"b":2}', b'{"e":1}']
