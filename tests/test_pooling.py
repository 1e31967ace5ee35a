"""``bench pool``: one paired estimate over independent samples of one protocol. Its numbers
against scipy's, what it refuses to pool, the heterogeneity test's size under discrete and skewed
nulls (simulated), and the command on the committed samples."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench.cli import main
from bench.errors import BenchError
from bench.report import pooling as pl

ROOT = Path(__file__).resolve().parents[1]


def _runs(arms: dict[str, list[float]], seeds: list[int], lr: float = 1e-3, steps: int = 100,
          workload: str = "mog-ring") -> pd.DataFrame:  # fmt: skip
    rows = []
    for arm, finals in arms.items():
        for seed, v in zip(seeds, finals, strict=True):
            rows.append({"workload": workload, "optimizer": arm, "lr": lr, "seed": seed,
                         "steps_completed": steps, "diverged": not math.isfinite(v),
                         "target_metric": "modes", "final_modes": v,
                         "final_fd": 2 * v})  # fmt: skip
    return pd.DataFrame(rows)


A = _runs({"adam": [3, 4, 5, 6, 4], "ortho": [5, 4, 7, 6, math.nan], "sgd": [1, 1, 1, 1, 1]},
          seeds=[0, 1, 2, 3, 4])  # fmt: skip
B = _runs({"adam": [2, 8, 5, 1, 6, 7], "ortho": [6, 8, 6, 4, 6, 8], "sgd": [1, 2, 1, 0, 1, 1]},
          seeds=[10, 11, 12, 13, 14, 15])  # fmt: skip


def test_each_sample_and_the_pool_give_scipys_paired_t_interval_and_tests():
    t = pl.pool({"a": A, "b": B}, resamples=999)
    ortho = t[t["arm"] == "ortho"].set_index("sample")
    assert list(ortho.index) == ["a", "b", pl.POOLED]
    da, db = np.array([2.0, 0, 2, 0]), np.array([4.0, 0, 1, 3, 0, 1])  # seed 4 diverged: left out
    for name, d in (("a", da), ("b", db), (pl.POOLED, np.r_[da, db])):
        row = ortho.loc[name]
        ci = sps.ttest_1samp(d, 0.0).confidence_interval(0.95)
        assert row.n_pairs == len(d) and row.mean_diff == pytest.approx(d.mean())
        assert (row.ci_lo, row.ci_hi) == pytest.approx((ci.low, ci.high))
        assert row.sd == pytest.approx(d.std(ddof=1))
    pooled = ortho.loc[pl.POOLED]
    assert pooled.p_t == pytest.approx(sps.ttest_1samp(np.r_[da, db], 0.0).pvalue)
    assert pooled.p_wilcoxon == pytest.approx(sps.wilcoxon(np.r_[da, db]).pvalue)
    assert 0 < pooled.p_heterogeneity <= 1
    assert math.isnan(ortho.loc["a"].p_t)  # tests are the pool's only
    assert set(t["arm"]) == {"ortho", "sgd"} and set(t["base"]) == {"adam"}


def test_another_metric_and_another_base_are_pooled_on_request():
    t = pl.pool({"a": A, "b": B}, base="sgd", metric="fd", resamples=999)
    row = t[(t["arm"] == "adam") & (t["sample"] == pl.POOLED)].iloc[0]
    d = 2 * (np.r_[A["final_modes"].iloc[:5], B["final_modes"].iloc[:6]] -
             np.r_[A["final_modes"].iloc[10:], B["final_modes"].iloc[12:]])  # fmt: skip
    assert row.metric == "fd" and row.mean_diff == pytest.approx(d.mean())


def test_every_pair_tied_is_no_difference():
    same = {"adam": [4, 4, 4], "ortho": [4, 4, 4]}
    t = pl.pool({"a": _runs(same, [0, 1, 2]), "b": _runs(same, [3, 4, 5])}, resamples=999)
    row = t[t["sample"] == pl.POOLED].iloc[0]
    assert (row.mean_diff, row.ci_lo, row.ci_hi, row.p_t, row.p_heterogeneity) == (0, 0, 0, 1, 1)


@pytest.mark.parametrize(
    "b, message",
    [
        (_runs({"adam": [1, 2], "ortho": [2, 3]}, seeds=[4, 20]), "seed 4 is in both"),
        (_runs({"adam": [1, 2], "ortho": [2, 3]}, seeds=[20, 21], lr=1e-4), "not one protocol"),
        (_runs({"adam": [1, 2], "ortho": [2, 3]}, seeds=[20, 21], steps=50), "for 100 steps"),
        (_runs({"sgd": [1, 2], "ortho": [2, 3]}, seeds=[20, 21]), "base arm 'adam'"),
        (pd.concat([_runs({"adam": [1], "ortho": [2]}, seeds=[20]),
                    _runs({"adam": [1], "ortho": [2]}, seeds=[21], lr=1e-2)]),
         "2 learning rates"),
    ],
)
def test_samples_that_are_not_one_protocol_or_not_independent_are_refused(b, message):
    with pytest.raises(BenchError, match=message):
        pl.pool({"a": A, "b": b}, resamples=99)


def test_an_unknown_metric_is_refused_with_the_choices():
    with pytest.raises(BenchError, match="choose from fd, modes"):
        pl.pool({"a": A, "b": B}, metric="fid", resamples=99)
    with pytest.raises(BenchError, match="at least two samples"):
        pl.pool({"a": A}, resamples=99)


NULLS = {
    # a paired difference of modes covered (0-8 each side): discrete, many ties
    "discrete": lambda rng, n: (rng.binomial(8, 0.5, n) - rng.binomial(8, 0.45, n)).astype(float),
    # Adam's final modes are bimodal (half the runs collapse): skewed, discrete differences
    "bimodal": lambda rng, n: np.where(rng.random(n) < 0.5, rng.integers(0, 3, n), 8) - 5.0,
    "skewed": lambda rng, n: rng.lognormal(0.0, 1.0, n),
}


@pytest.mark.parametrize("null", list(NULLS))
def test_the_heterogeneity_test_rejects_at_most_alpha_when_the_samples_are_one(null):
    """Three samples of 10, 32 and 32 pairs (the ring's counter samples) from one distribution,
    300 simulated pools: the permutation test's rejection rate at 5% is within 3 simulation
    SEs of 5% (it is exact, so neither far above nor far below)."""
    rng = np.random.default_rng(11)
    draw, reps = NULLS[null], 300
    p = np.array([pl.heterogeneity_p([draw(rng, n) for n in (10, 32, 32)], seed=k, resamples=499)
                  for k in range(reps)])  # fmt: skip
    se = math.sqrt(0.05 * 0.95 / reps)
    assert abs((p < 0.05).mean() - 0.05) <= 3 * se, (p < 0.05).mean()


def test_the_heterogeneity_test_sees_a_sample_that_moved():
    rng = np.random.default_rng(3)
    draw = NULLS["discrete"]
    p = [pl.heterogeneity_p([draw(rng, 10), draw(rng, 32), draw(rng, 32) + 2.0], seed=k,
                            resamples=499) for k in range(40)]  # fmt: skip
    assert np.mean(np.array(p) < 0.05) >= 0.9


def test_pool_on_the_committed_counter_samples_gives_the_readmes_estimate(tmp_path, capsys):
    """The README's pooled 25,000-step estimate for ⊥Grad (42 pairs: the 10-seed counter sample
    and the first 32-pair sample), from the committed reports."""
    reports = [str(ROOT / "results" / s / "report")
               for s in ("unrolled-ring-counter", "unrolled-ring-25k-cpu")]  # fmt: skip
    out = tmp_path / "pool.csv"
    assert main(["pool", *reports, "--csv", str(out)]) == 0
    t = pd.read_csv(out)
    row = t[(t["arm"] == "adam+ortho") & (t["sample"] == pl.POOLED)].iloc[0]
    assert row.n_pairs == 42
    assert (row.mean_diff, row.ci_lo, row.ci_hi) == pytest.approx((0.857, -0.304, 2.02), abs=5e-3)
    assert row.p_t == pytest.approx(0.144, abs=5e-3)
    assert "pooled: +0.857 [-0.304, 2.02] over 42 pairs" in capsys.readouterr().out


def test_the_command_refuses_a_sample_given_twice_with_one_line_and_writes_nothing(
    tmp_path, capsys
):
    report = str(ROOT / "results" / "unrolled-ring-25k-cpu" / "report")
    out = tmp_path / "pool.csv"
    assert main(["pool", report, report, "--csv", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "given twice" in err
    assert not out.exists()
