"""The report's overhead vs Adam compares runs trained at the same population size."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench.report.tables import overhead, population_sizes


def _runs(times, sizes=None):
    frame = pd.DataFrame({"time_per_step": times})
    if sizes is not None:
        frame["population_size"] = sizes
    return frame


def test_runs_without_a_population_size_were_trained_alone():
    assert list(population_sizes(_runs([1.0, 2.0]))) == [1, 1]
    assert list(population_sizes(_runs([1.0, 2.0], [5, None]))) == [5, 1]


def test_overhead_is_taken_at_one_population_size_both_sides_ran_at():
    # the variant ran mostly in populations of 5 (a member's time: a fifth of the step), the
    # reference both alone and in populations of 5: only the size-5 runs are compared
    variant = _runs([0.3, 0.3, 0.3, 1.5], [5, 5, 5, None])
    reference = _runs([0.2, 0.2, 1.0], [5, 5, 1])
    ratio, size = overhead(variant, reference)
    assert size == 5 and ratio == pytest.approx(1.5)
    ratio, size = overhead(_runs([2.0]), _runs([1.0]))  # stored before populations: alone
    assert (ratio, size) == (2.0, 1)


def test_no_shared_population_size_gives_no_overhead():
    ratio, size = overhead(_runs([0.3], [5]), _runs([1.0]))
    assert math.isnan(ratio) and size is None


def test_overhead_compares_standalone_step_times_when_every_run_records_one():
    # adam trained in populations of 8 (a member's share 0.1), the variant alone (1.5): their
    # standalone times compare on equal terms, each side's fastest (0.4 and 1.5)
    variant = _runs([1.5, 1.5], [None, None]).assign(time_per_step_alone=[1.5, 1.5])
    reference = _runs([0.1, 0.1], [8, 8]).assign(time_per_step_alone=[0.4, 0.6])
    ratio, size = overhead(variant, reference)
    assert (ratio, size) == (pytest.approx(3.75), 1)


def test_one_contended_standalone_timing_does_not_move_the_overhead():
    # the default sweep's mog-ring: Adam's population of 8 was timed alone at 6.73 ms while the
    # other worker ran, its population of 4 at 3.11 ms; ⊥Grad's at 3.11 and 3.21 ms
    adam = _runs([3.4e-3] * 12, [8] * 8 + [4] * 4)
    adam = adam.assign(time_per_step_alone=[6.73e-3] * 8 + [3.11e-3] * 4)
    ortho = _runs([3.1e-3] * 12, [8] * 8 + [4] * 4)
    ortho = ortho.assign(time_per_step_alone=[3.11e-3] * 8 + [3.21e-3] * 4)
    ratio, size = overhead(ortho, adam)
    assert (ratio, size) == (pytest.approx(1.0), 1)  # the means would say 0.57
