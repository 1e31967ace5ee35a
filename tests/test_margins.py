"""Equivalence margins are declared with each metric, recorded by every run, and read back by
the report: older runs fall back to the workload's current declaration, else no margin."""

from __future__ import annotations

import math

import pytest

from bench.report import data
from bench.report import verdicts as v
from ogan import workloads
from ogan.workloads.base import Metric
from ogan.workloads.mog import mog_metrics


def test_every_registered_metric_declares_a_margin_and_the_mixtures_bound_their_modes():
    for name in ("bilinear", "dirac", "mog-ring", "mog-grid", "digits"):
        for metric, m in workloads.get(name).metrics.items():
            assert m.margin is not None and m.margin > 0, (name, metric)
    assert mog_metrics(8)["modes"].bounds == (0, 8) and mog_metrics(8)["modes"].margin == 0.5
    assert workloads.get("mog-grid").metrics["modes"].bounds == (0, 25)


@pytest.mark.parametrize("margin", [0.0, -1.0, math.inf])
def test_a_margin_must_be_positive_and_finite(margin):
    with pytest.raises(ValueError, match="margin"):
        Metric("x", margin=margin)


def test_the_report_reads_the_recorded_margin_first():
    recorded = {"modes": {"margin": 0.7}, "fd": {"margin": None}}
    margins, source, note = data._margins("wl", recorded, workloads.get("mog-ring"))
    assert margins == {"modes": 0.7, "fd": None} and source == "recorded" and note == ""


def test_runs_without_recorded_margins_fall_back_to_the_current_declaration_and_say_so():
    recorded = {"modes": {"higher_is_better": True}, "fd": {"higher_is_better": False}}
    margins, source, note = data._margins("mog-ring", recorded, workloads.get("mog-ring"))
    assert margins == {"modes": 0.5, "fd": 0.1} and source == "declared now"
    assert "predate recorded equivalence margins" in note and "modes ±0.5" in note


def test_without_a_recorded_or_resolvable_margin_there_is_no_equivalence_verdict():
    recorded = {"score": {"higher_is_better": True}}
    margins, source, note = data._margins("mine", recorded, None)
    assert margins == {"score": None} and source == "none"
    assert "no comparison on it can be called equivalent" in note
    same = v.decide(
        [0.0] * 12, higher_is_better=True, margin=v.margin_for(v.DIFFERENCE, None, False)
    )
    assert same.verdict == v.UNDECIDED and "δ = none declared" in same.describe()
