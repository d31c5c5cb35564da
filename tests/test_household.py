"""Two `python -m edge` processes (front, back) of one household on one real Mosquitto, each
playing its own clip, share their face library (library.share, edge/share/): a stranger named
on front's web page is recognized by back at their next visit; a person forgotten on back is
gone from front (and from its Home Assistant entities); two namings at the same moment are
both kept on both; back, stopped during three changes, catches up when it starts again."""

from __future__ import annotations

import pytest

from tests.household import household_run

pytestmark = pytest.mark.slow

NAMING_TO_RECOGNIZED_S = 10.0  # the bound


def test_two_pis_share_one_library(data_dir, trained_model, tmp_path):
    out = household_run(data_dir, trained_model, tmp_path)
    assert out["named_to_back_recognized_s"] <= NAMING_TO_RECOGNIZED_S, out
    for pi, text in out["logs"].items():
        assert "Traceback" not in text, f"{pi}:\n{text[-3000:]}"
    assert "household: adopted" in out["logs"]["back"]
    assert "Tony Blair" in out["people"] and "Gerhard_Schroeder" not in out["people"]
