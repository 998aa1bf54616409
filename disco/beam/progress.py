"""Progress lines for long Beam steps: OpenMIC's 20,000 clips take minutes per step, and a step
that prints nothing between "started" and "finished" looks hung.

Each worker process logs its own count (a Beam counter is only visible to the launcher at the
end), at most every ``every_s`` seconds: on the local runner that is the whole run's progress; on
Dataflow each worker's log shows its share.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 10.0


class Progress:
    def __init__(
        self, step: str, *, total: int | None = None, unit: str = "clips", every_s: float = PROGRESS_EVERY_S
    ):
        self.step, self.total, self.unit, self.every_s = step, total, unit, every_s
        self.done = 0
        self._start = self._last = time.monotonic()
        self._lock = threading.Lock()

    def add(self, n: int = 1) -> str | None:
        """Count n more; returns the line logged, if one was due."""
        with self._lock:
            self.done += n
            now = time.monotonic()
            if now - self._last < self.every_s and not (self.total and self.done >= self.total):
                return None
            self._last = now
            line = self.line(now)
        log.info("%s", line)
        return line

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self._start, 1e-9)
        rate = self.done / elapsed
        text = f"{self.step}: {self.done}"
        if self.total:
            text += f"/{self.total} {self.unit} ({100.0 * self.done / self.total:.0f} %)"
            if rate > 0 and self.done < self.total:
                text += f", {rate:.1f}/s, about {_duration((self.total - self.done) / rate)} left"
            else:
                text += f", {rate:.1f}/s"
        else:
            text += f" {self.unit}, {rate:.1f}/s"
        return text


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
