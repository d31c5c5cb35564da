"""The preview's frame rate: frames over the time they took, not the mean of 1/dt."""

from __future__ import annotations

import pytest

from edge.stats import Rate


def test_rate_counts_frames_over_elapsed_time():
    """15 fps with uneven gaps (fast bursts, then a wait) reads 15, not the mean of 1/dt."""
    rate = Rate(window_s=2.0)
    t, fps = 100.0, 0.0
    for _ in range(20):  # each 1/15 s: two frames 1 ms apart, then one after the rest
        for dt in (0.001, 0.001, 0.2 - 0.002):
            t += dt
            fps = rate.tick(t)
    assert fps == pytest.approx(15.0, rel=0.05)
    assert rate.tick(t + 10.0) == pytest.approx(1 / 10.0)  # after a stall: the stall's rate
