"""Measuring on a shared machine: how many cores other processes use during a
measurement (from /proc/stat), and retrying a measurement until they leave
the machine alone. Used by the scripts of this directory.
"""

from __future__ import annotations

import os
import sys
import time

# Measurements are retried while other processes use more than this many cores.
MAX_FOREIGN_CORES = 0.15
ATTEMPTS = 6


class CpuSample:
    """Busy time of the whole machine (/proc/stat) and of this process and its children."""

    def __init__(self) -> None:
        self.at = time.perf_counter()
        self.busy = 0.0
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:9]]
            self.busy = (sum(v) - v[3] - v[4]) / 100.0  # USER_HZ
        except OSError:
            pass
        t = os.times()
        # Children count once waited for: every measured process is waited for
        # before the sample that ends its measurement is taken.
        self.own = t.user + t.system + t.children_user + t.children_system

    def foreign_cores(self) -> float:
        now = CpuSample()
        if self.busy == 0.0:
            return 0.0
        return max(0.0, (now.busy - self.busy) - (now.own - self.own)) / (now.at - self.at)


def wait_for_quiet(max_seconds: float = 120.0) -> None:
    deadline = time.perf_counter() + max_seconds
    while time.perf_counter() < deadline:
        s = CpuSample()
        time.sleep(1.0)
        if s.foreign_cores() <= MAX_FOREIGN_CORES / 2:
            return


def measure(key: str, fn):
    """Run fn() until other processes leave the machine alone; keep the least
    disturbed attempt. Returns (value, foreign cores of that attempt)."""
    best = None
    for attempt in range(1, ATTEMPTS + 1):
        s = CpuSample()
        value = fn()
        foreign = s.foreign_cores()
        if best is None or foreign < best[1]:
            best = (value, foreign)
        if foreign <= MAX_FOREIGN_CORES:
            break
        if attempt < ATTEMPTS:
            print(
                f"  {key}: other processes used {foreign:.2f} cores (attempt {attempt}/{ATTEMPTS}); "
                "waiting for a quiet machine",
                file=sys.stderr,
            )
            wait_for_quiet()
    return best[0], round(best[1], 2)
