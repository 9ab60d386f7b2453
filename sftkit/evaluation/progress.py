"""Progress of a long evaluation call on stderr: done/total, rate and ETA.

Quiet for calls that finish within ``first_after`` seconds; then one line at most every ``every``
seconds and a last one at the end. ``SFTKIT_NO_PROGRESS=1`` silences it (stdout is never used).
"""

from __future__ import annotations

import os
import sys
import time


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """Counts ``total`` items of work called ``what``; :meth:`advance` after each batch."""

    def __init__(self, what: str, total: int, *, unit: str = "items", every: float = 5.0,
                 first_after: float = 3.0, stream=None, clock=time.monotonic):
        self.what = what
        self.total = max(0, int(total))
        self.unit = unit
        self.every = every
        self.first_after = first_after
        self.stream = stream
        self.clock = clock
        self.done = 0
        self.started = clock()
        self.last_shown: float | None = None
        self.enabled = not os.environ.get("SFTKIT_NO_PROGRESS")

    def line(self) -> str:
        """``what: done/total unit, rate/s, ETA t`` for the work so far."""
        elapsed = max(1e-9, self.clock() - self.started)
        rate = self.done / elapsed
        text = f"{self.what}: {self.done}/{self.total} {self.unit}, {rate:.2g}/s"
        if self.done >= self.total:
            return text + f", done in {_clock(elapsed)}"
        if self.done:
            text += f", ETA {_clock((self.total - self.done) / rate)}"
        return text

    def advance(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        now = self.clock()
        due = self.last_shown is None and now - self.started >= self.first_after
        due = due or (self.last_shown is not None and now - self.last_shown >= self.every)
        if due and self.done < self.total:
            self._show(now)

    def close(self) -> None:
        """The last line, when any line was shown (a quiet call stays quiet)."""
        if self.last_shown is not None:
            self._show(self.clock())

    def _show(self, now: float) -> None:
        self.last_shown = now
        if self.enabled:
            print(self.line(), file=self.stream or sys.stderr, flush=True)
