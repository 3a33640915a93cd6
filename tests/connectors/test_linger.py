"""A finite source's linger at its end (``connectors.linger``): it waits while the flow
holds decisions and ends once they are made, and gives up after ``stall_s`` without
progress rather than hang."""

from __future__ import annotations

from connectors.linger import GAVE_UP, Linger


def test_waits_until_done_and_gives_up_only_without_progress(capsys):
    now = [0.0]
    state = {"held": 5, "progress": 0}
    linger = Linger(lambda: state["held"] == 0, lambda: state["progress"], poll_s=0,
                    stall_s=10, clock=lambda: now[0])
    for _ in range(30):  # progress every 2 s: never stalled
        now[0] += 2
        state["progress"] += 1
        assert linger.wait()
    now[0] += 9  # no progress for 9 s: still waiting
    assert linger.wait()
    now[0] += 2  # 11 s: gives up, says so, and stays given up
    assert not linger.wait()
    assert "without progress" in capsys.readouterr().err and GAVE_UP[0] >= 1
    GAVE_UP[0] -= 1  # given up on purpose here (the suite checks no flow run does)
    assert not linger.wait()

    state.update(held=0)
    fresh = Linger(lambda: state["held"] == 0, lambda: 0, poll_s=0)
    assert not fresh.wait()
