"""Wrong passwords per client address: each one answered more slowly, then the address banned
for a while. Logged at WARNING with the address."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

MAX_FAILURES = 10  # wrong passwords from one address within WINDOW_S, then a ban
WINDOW_S = 600.0
BAN_S = 900.0
DELAY_STEP_S = 0.25  # the n-th wrong password in the window is answered after n * this
MAX_DELAY_S = 2.0


class Logins:
    """Counts wrong passwords per address; says how long to wait and who is banned."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self._banned: dict[str, float] = {}  # address -> end of the ban

    def banned_for(self, address: str) -> float:
        """Seconds left of the address's ban (0 when not banned)."""
        with self._lock:
            until = self._banned.get(address, 0.0)
            left = until - self._clock()
            if until and left <= 0:
                del self._banned[address]
            return max(0.0, left)

    def failed(self, address: str) -> float:
        """A wrong password from `address`: the delay before answering it (seconds)."""
        now = self._clock()
        with self._lock:
            times = self._failures.setdefault(address, deque())
            times.append(now)
            while times and times[0] < now - WINDOW_S:
                times.popleft()
            count = len(times)
            if count >= MAX_FAILURES:
                self._banned[address] = now + BAN_S
                del self._failures[address]
        if count >= MAX_FAILURES:
            log.warning(
                "web: %s banned for %d min after %d wrong passwords in %d min",
                address, BAN_S // 60, count, WINDOW_S // 60,
            )  # fmt: skip
        else:
            log.warning("web: wrong password from %s (%d in %d min)", address, count, WINDOW_S // 60)  # fmt: skip
        return min(MAX_DELAY_S, DELAY_STEP_S * count)

    def succeeded(self, address: str) -> None:
        """The right password: the address starts afresh."""
        with self._lock:
            self._failures.pop(address, None)
