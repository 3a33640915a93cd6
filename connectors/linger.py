"""How long a finite source waits after its end before it really ends.

A Bytewax dataflow ends when its inputs end: a stateful step gets ``on_eof`` and must let
go of what it holds at once. The event-time decisions (``operators.decision_hold``) hold
triggers until the learned models they read are complete; let go all at once, the last
ones would read whatever the learner had reached by then, which the thread timing
decides. So a finite source, after its end marker, lingers: it sends nothing and asks
``done()`` every ``poll_s`` seconds, and ends once it says yes, or once ``stall_s`` seconds
have passed without ``progress()`` changing (a safety net for a bug that would keep
something held forever; said on stderr).

>>> left = [3]
>>> linger = Linger(lambda: left[0] == 0, lambda: left[0], poll_s=0, stall_s=60)
>>> linger.wait()
True
>>> left[0] = 0
>>> linger.wait()
False
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

GAVE_UP = [0]  # lingers of this process that gave up (a pin left behind: a bug)


class Linger:
    def __init__(self, done: Callable[[], bool], progress: Callable[[], Any],
                 poll_s: float = 0.01, stall_s: float = 120.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.done, self.progress, self.poll_s, self.stall_s = done, progress, poll_s, stall_s
        self._clock = clock
        self._seen: Any = None
        self._since = 0.0
        self._gave_up = False

    def wait(self) -> bool:
        """True while the source should keep waiting."""
        if self._gave_up or self.done():
            return False
        now, seen = self._clock(), self.progress()
        if seen != self._seen:
            self._seen, self._since = seen, now
        elif now - self._since > self.stall_s:
            self._gave_up = True
            GAVE_UP[0] += 1
            print(f"[bespoke] input ended; still held after {self.stall_s:.0f} s without "
                  f"progress ({seen!r}): letting go", file=sys.stderr)
            return False
        return True
