"""⊥Grad on one player only (``ortho_players``): the spec, the step, the run id, the report.

The population's members against their standalone runs are in ``test_population.py``.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

import ogan
from bench.config import parse_sweep
from bench.errors import BenchError
from bench.labels import derive_label, variant_label
from bench.report.data import _pairs
from ogan.errors import ConfigError
from ogan.game import Game, resolve

SPEC = {"name": "adam", "lr": 1e-3, "betas": [0.5, 0.999]}
RESULTS = Path(__file__).resolve().parents[1] / "results"


REUSERS = {
    "unrolled-ring-25k-cpu-extra-vs-optimistic": "unrolled-ring-25k-cpu-optimistic-ortho-d",
    "unrolled-ring-25k-cpu-surgery-vs-optimistic": "unrolled-ring-25k-cpu-optimistic-ortho-d",
}
"""A sweep that reuses a finished arm of another (the same run ids, copied) -> that sweep: it
shares that sweep's seeds by design, so it is left out of the other's "no other sweep" check
and has its own test."""


def _seeds_of_every_other_sweep(name: str) -> set[int]:
    """The seeds of every embedded sweep but ``name`` (and a sweep that reuses ``name``'s runs,
    :data:`REUSERS`): a new sample's must not be among them."""
    import bench
    from bench.config import load_sweep

    others = set()
    for path in (Path(bench.__file__).parent / "sweeps").glob("*.toml"):
        if path.stem != name and REUSERS.get(path.stem) != name:
            others |= {s.seed for s in load_sweep(path.stem, device="cpu").specs}
    return others


def _paired_t(wide, metric: str, arm: str, base: str, log: bool = False):
    """(mean, CI low, CI high, p, n) of the seed-matched differences arm − base of ``metric``
    (of logs where ``log``), from a runs.csv pivoted by seed × label, by scipy's one-sample t."""
    from scipy import stats

    a, b = wide[metric][arm], wide[metric][base]
    d = (np.log(a) - np.log(b)) if log else (a - b)
    d = d[a.notna() & b.notna()]
    t = stats.ttest_1samp(d, 0.0)
    lo, hi = t.confidence_interval(0.95)
    return d.mean(), lo, hi, t.pvalue, len(d)


SECONDARY = {"fd": ("final_fd", True), "high_quality": ("final_high_quality", False),
             "reverse_kl": ("final_reverse_kl", False)}  # fmt: skip
"""The declared secondary metrics of the ring samples: report statistic → (runs.csv column, log)."""


def _holm(p: dict) -> dict:
    """Holm's step-down adjustment of ``p`` (key -> p-value) over its m entries, written out
    here as a check independent of :func:`bench.report.families.holm`."""
    order = sorted(p, key=p.get)
    steps = np.maximum.accumulate([p[k] * (len(p) - i) for i, k in enumerate(order)])
    return {k: min(1.0, h) for k, h in zip(order, steps)}


def _committed_sample(name: str, seeds: range, arm: str, base: str):
    """A committed ring sample's report read back: the runs pivoted by seed × label (checked to
    be ``seeds``), the paired t of ``arm`` − ``base`` on final modes and on each secondary metric
    (:func:`_paired_t`), each secondary p Holm-adjusted over the three, and the report's own
    verdicts by statistic."""
    import pandas as pd

    report = RESULTS / name / "report"
    wide = pd.read_csv(report / "runs.csv").pivot(index="seed", columns="label")
    assert list(wide.index) == list(seeds)
    modes = _paired_t(wide, "final_modes", arm, base)
    secondary = {k: _paired_t(wide, col, arm, base, log) for k, (col, log) in SECONDARY.items()}
    holm = _holm({k: t[3] for k, t in secondary.items()})
    table = pd.read_csv(report / "comparisons.csv")
    return wide, modes, secondary, holm, table, dict(zip(table.statistic, table.verdict))


def _agrees_with(name: str, source: str, label: str):
    """``bench agree``'s table beside ``name``'s report against ``source``'s, checked: one
    optimizer, ``label``, and its four final metrics, none with a difference detected; its modes
    row returned."""
    import pandas as pd

    agree = pd.read_csv(RESULTS / name / "report" / f"agreement-with-{source}.csv")
    assert set(agree["optimizer"]) == {label} and len(agree) == 4
    assert (agree["verdict"] == "no difference detected").all()
    return agree.set_index("metric").loc["modes"]


def _game(players=None, ortho=True, **kw):
    spec = {**SPEC, **({"ortho": "weights"} if ortho else {})}
    if players is not None:
        spec["ortho_players"] = players
    return Game(resolve("mog-ring", spec, device="cpu", seed=3, batch_size=32,
                        scheme="simultaneous", threads=1, **kw))  # fmt: skip


def _params(player):
    return [p.detach().clone() for p in player.params]


@pytest.mark.parametrize("players", ["g", "d"])
def test_one_simultaneous_step_is_the_projected_step_for_one_player_and_adams_for_the_other(
    players,
):
    # From one initialisation and batch both players' gradients are taken at the same point, so
    # after one step the player with ⊥Grad is where Adam + ⊥Grad on both puts it and the other
    # where plain Adam does: the exact update rule of each, bit for bit.
    one, both, plain = _game(players), _game("both"), _game(ortho=False)
    for g in (one, both, plain):
        g.step(0)
    other = "d" if players == "g" else "g"
    for a, b in zip(_params(getattr(one, players)), _params(getattr(both, players)), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(_params(getattr(one, other)), _params(getattr(plain, other)), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # and the step differs from both twins' in the player each leaves out
    assert any(not torch.equal(a, b) for a, b in zip(_params(getattr(one, other)),
                                                     _params(getattr(both, other))))  # fmt: skip


@pytest.mark.parametrize("players", ["g", "d"])
def test_the_records_show_a_projection_on_that_player_only(players):
    r = ogan.train("mog-ring", {**SPEC, "ortho": "weights", "ortho_players": players}, steps=4,
                   eval_every=4, device="cpu", batch_size=16, seed=1)  # fmt: skip
    other = "d" if players == "g" else "g"
    assert (r.trace[f"removed_frac_{players}"] > 0).all()
    assert (r.trace[f"removed_frac_{other}"] == 0).all()
    np.testing.assert_allclose(r.trace[f"grad_norm_{other}"], r.trace[f"grad_norm_{other}_pre"])
    assert r.config["optimizer"]["ortho_players"] == players


def test_both_is_the_default_and_leaves_the_spec_as_it_was():
    given = resolve("mog-ring", {**SPEC, "ortho": "weights", "ortho_players": "both"}, device="cpu")
    default = resolve("mog-ring", {**SPEC, "ortho": "weights"}, device="cpu")
    assert "ortho_players" not in given.optimizer and given == default


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({**SPEC, "ortho": "weights", "ortho_players": "G"}, "Invalid ortho_players: 'G'; valid"),
        ({**SPEC, "ortho_players": "g"}, "ortho_players='g' needs ortho='weights'"),
        ({**SPEC, "ortho": "none", "ortho_players": "d"}, "ortho_players='d' needs ortho="),
    ],
)
def test_bad_ortho_players_are_refused_in_one_line(spec, message):
    with pytest.raises(ConfigError, match=message) as info:
        resolve("mog-ring", spec, device="cpu")
    assert "\n" not in str(info.value)


def test_labels_name_the_player():
    assert derive_label({**SPEC, "ortho": "weights", "ortho_players": "g"}) == "adam+ortho(g)"
    assert derive_label({**SPEC, "ortho": "weights", "ortho_players": "both"}) == "adam+ortho"
    spec = {**SPEC, "ortho": "weights", "ortho_players": "d"}
    assert variant_label(spec, ["ortho_players"], None, None) == "adam+ortho(d)"


def test_the_report_pairs_each_one_player_arm_with_its_twin_without_projection():
    def record(run_id, **opt):
        return {"run_id": run_id, "config": {"optimizer": {**SPEC, "lr_ratio": 1.0,
                                                           "surgery": False, **opt}}}  # fmt: skip

    records = [record("a"), record("g", ortho="weights", ortho_players="g"),
               record("d", ortho="weights", ortho_players="d")]  # fmt: skip
    names = {"a": "adam", "g": "adam+ortho(g)", "d": "adam+ortho(d)"}
    pairs = _pairs(records, dict.fromkeys(names, "mog-ring"), names)
    got = sorted(zip(pairs["kind"], pairs["base"], pairs["projected"], strict=True))
    assert got == [("ortho", "adam", "adam+ortho(d)"), ("ortho", "adam", "adam+ortho(g)")]


SWEEP = """
[sweep]
name = "t"
seeds = [0]
steps = 20
eval_every = 10

[[workload]]
name = "mog-ring"
"""
ENTRY = """
[[optimizer]]
name = "adam"
ortho = "weights"
lr = 1e-3
"""


def test_a_sweep_grids_over_the_players_and_both_is_the_plain_ortho_run():
    grid = parse_sweep(SWEEP + ENTRY + 'ortho_players = ["both", "g", "d"]\n', device="cpu")
    ids = {s.label: s.run_id for s in grid.specs}
    assert sorted(ids) == ["adam+ortho", "adam+ortho(d)", "adam+ortho(g)"]
    assert len(set(ids.values())) == 3
    plain = parse_sweep(SWEEP + ENTRY, device="cpu")
    assert [s.run_id for s in plain.specs] == [ids["adam+ortho"]]
    with pytest.raises(BenchError, match="two grid points give the same run"):
        parse_sweep(SWEEP + ENTRY + 'ortho_players = "both"\nlabel = "b"\n' + ENTRY, device="cpu")


def test_the_players_study_adds_two_arms_to_default_ring_25k_and_reuses_its_runs():
    """bench/sweeps/default-ring-25k-players.toml: default-ring-25k's game, length and seeds;
    its Adam and Adam + ⊥Grad are that study's runs (the same run ids), and the two new arms
    differ from Adam + ⊥Grad only in ortho_players."""
    from bench.config import load_sweep

    base = load_sweep("default-ring-25k", device="cpu").specs
    players = load_sweep("default-ring-25k-players", device="cpu").specs
    assert {s.run_id for s in base} == {s.run_id for s in players if "(" not in s.label}
    by_label = {}
    for s in players:
        by_label.setdefault(s.label, set()).add(s.seed)
    assert sorted(by_label) == ["adam", "adam+ortho", "adam+ortho(d)", "adam+ortho(g)"]
    assert all(seeds == set(range(6000, 6064)) for seeds in by_label.values())
    ortho = next(dict(s.optimizer) for s in players if s.label == "adam+ortho")
    for label in ("g", "d"):
        spec = next(dict(s.optimizer) for s in players if s.label == f"adam+ortho({label})")
        assert spec == {**ortho, "ortho_players": label}
    assert {(s.steps, s.eval_every, s.workload_options) for s in players} == {
        (s.steps, s.eval_every, s.workload_options) for s in base}


def test_the_replication_sample_repeats_two_arms_of_the_players_study_on_new_seeds():
    """bench/sweeps/default-ring-25k-players-b.toml: Adam and Adam + ⊥Grad on D only with the
    players study's specs, length and evaluation exactly, on 64 seeds no other sweep uses (so the
    two samples can be pooled: bench pool refuses shared seeds)."""

    from bench.config import load_sweep

    first = load_sweep("default-ring-25k-players", device="cpu").specs
    second = load_sweep("default-ring-25k-players-b", device="cpu").specs
    assert sorted({s.label for s in second}) == ["adam", "adam+ortho(d)"]
    for label in ("adam", "adam+ortho(d)"):
        seeds = sorted(s.seed for s in second if s.label == label)
        assert seeds == list(range(7000, 7064))
        spec = {dict(s.optimizer)["name"]: s for s in first if s.label == label}
        again = {dict(s.optimizer)["name"]: s for s in second if s.label == label}
        assert {k: dict(v.optimizer) for k, v in spec.items()} == {
            k: dict(v.optimizer) for k, v in again.items()}
    assert {(s.steps, s.eval_every, s.workload_options) for s in second} == {
        (s.steps, s.eval_every, s.workload_options) for s in first}
    assert not _seeds_of_every_other_sweep("default-ring-25k-players-b") & {s.seed for s in second}


def test_the_unrolled_d_only_sample_is_the_unrolled_protocol_with_d_only_on_new_seeds():
    """bench/sweeps/unrolled-ring-25k-cpu-ortho-d.toml: unrolled-ring-25k-cpu's protocol, length
    and evaluation, its Adam arm exactly and its Adam + ⊥Grad with the projection on D only; the
    one other difference, declared in the file, is flush_denormal in both arms (so its run ids
    are its own); 48 seeds no other sweep uses."""

    from bench.config import load_sweep

    base = load_sweep("unrolled-ring-25k-cpu", device="cpu").specs
    d_only = load_sweep("unrolled-ring-25k-cpu-ortho-d", device="cpu").specs
    assert sorted({s.label for s in d_only}) == ["adam", "adam+ortho(d)"]
    for label, base_label, extra in (("adam", "adam", {}),
                                     ("adam+ortho(d)", "adam+ortho", {"ortho_players": "d"})):
        assert sorted(s.seed for s in d_only if s.label == label) == list(range(8000, 8048))
        spec = next(dict(s.optimizer) for s in base if s.label == base_label)
        assert {tuple(sorted(dict(s.optimizer).items())) for s in d_only if s.label == label} == {
            tuple(sorted({**spec, **extra}.items()))}
    options = {dict(s.workload_options).get("flush_denormal") for s in d_only}
    assert options == {True}
    strip = {k: v for k, v in dict(d_only[0].workload_options).items() if k != "flush_denormal"}
    assert {tuple(sorted(dict(s.workload_options).items())) for s in base} == {
        tuple(sorted(strip.items()))}
    assert {(s.steps, s.eval_every) for s in d_only} == {(s.steps, s.eval_every) for s in base}
    assert not {s.run_id for s in d_only} & {s.run_id for s in base}
    others = _seeds_of_every_other_sweep("unrolled-ring-25k-cpu-ortho-d")
    assert not others & {s.seed for s in d_only}


def test_the_unrolled_d_only_reports_verdicts_follow_from_its_committed_runs():
    """The README's figures for unrolled-ring-25k-cpu-ortho-d, recomputed with scipy from the
    committed runs.csv (seed-matched pairs, paired t; Holm over the three secondary metrics), and
    the report's own verdicts on them."""
    wide, modes, secondary, holm, _, verdicts = _committed_sample(
        "unrolled-ring-25k-cpu-ortho-d", range(8000, 8048), "adam+ortho(d)", "adam")
    assert modes[:3] == pytest.approx((1.833, 0.969, 2.698), abs=1e-3)
    assert modes[3] < 1e-3 and modes[4] == 48
    assert np.exp(secondary["fd"][:3]) == pytest.approx((0.205, 0.0833, 0.503), abs=1e-3)
    assert secondary["high_quality"][:3] == pytest.approx((-0.0513, -0.0942, -0.0084), abs=1e-4)
    assert (*secondary["reverse_kl"][:3], secondary["reverse_kl"][4]) == pytest.approx(
        (-0.314, -0.567, -0.061, 44), abs=1e-3)  # fmt: skip
    assert max(holm.values()) < 0.05  # all three decided at the family's level
    # The README's description after the fact: the pairs where Adam's run ended on 0-2 modes.
    modes_a, modes_d = wide["final_modes"]["adam"], wide["final_modes"]["adam+ortho(d)"]
    hq = wide["final_high_quality"]
    collapsed = modes_a <= 2
    assert (collapsed.sum(), (modes_d <= 2).sum()) == (20, 3)
    assert (modes_d - modes_a)[collapsed].mean() == pytest.approx(4.35)
    assert (modes_d - modes_a)[~collapsed].mean() == pytest.approx(0.0357, abs=1e-3)
    assert (hq["adam+ortho(d)"] - hq["adam"])[~collapsed].mean() == pytest.approx(-0.084, abs=1e-3)
    assert verdicts["modes"] == "better"
    assert (verdicts["fd"], verdicts["high_quality"], verdicts["reverse_kl"]) == (
        "better", "worse", "better")  # fmt: skip


def _unflushed(specs) -> set:
    """The specs' workload options without ``flush_denormal``."""
    return {tuple(kv for kv in s.workload_options if kv[0] != "flush_denormal") for s in specs}


def _declared_sample(name: str, seeds: range, sources: dict[str, str | None]) -> None:
    """A sample declared against another arm, checked: each arm's optimizer and
    workload options as in its source sweep (up to the flush, which every arm has here; an arm
    with no source, None, is new and its test checks it), on ``seeds`` (no other sweep's), the
    D-only sample's protocol exactly (workload options, flush included, length, evaluation), and
    the comparison declared (the first arm against the second)."""
    from bench.config import load_sweep

    sweep = load_sweep(name, device="cpu")
    d_only = load_sweep("unrolled-ring-25k-cpu-ortho-d", device="cpu").specs
    assert sweep.compare == ((*sources, "steps"),)
    assert sorted({s.label for s in sweep.specs}) == sorted(sources)
    assert all(("flush_denormal", True) in s.workload_options for s in sweep.specs)
    for label, source in sources.items():
        ours = [s for s in sweep.specs if s.label == label]
        assert sorted(s.seed for s in ours) == list(seeds)
        if source is None:
            continue
        theirs = [s for s in load_sweep(source, device="cpu").specs if s.label == label]
        assert {s.optimizer for s in ours} == {s.optimizer for s in theirs}
        assert _unflushed(ours) == _unflushed(theirs)
    assert {(s.workload, s.workload_options, s.steps, s.eval_every) for s in sweep.specs} == {
        (s.workload, s.workload_options, s.steps, s.eval_every) for s in d_only}  # fmt: skip
    assert not _seeds_of_every_other_sweep(name) & {s.seed for s in sweep.specs}


def _declared_with_projection_on_d(name: str, seeds: range, base: str, optimizer: str,
                                   source: str) -> None:
    """A sample of ``base`` with and without ⊥Grad on D, checked: :func:`_declared_sample` with
    ``base`` as in ``source`` and the new arm ``base+ortho(d)`` declared against it, whose
    optimizer is ``base``'s (named ``optimizer``) plus ortho = "weights" and ortho_players =
    "d", nothing else."""
    from bench.config import load_sweep

    arm = f"{base}+ortho(d)"
    _declared_sample(name, seeds, {arm: None, base: source})
    optimizers = {s.label: dict(s.optimizer) for s in load_sweep(name, device="cpu").specs}
    assert optimizers[arm] == {**optimizers[base], "ortho": "weights", "ortho_players": "d"}
    assert optimizers[base]["name"] == optimizer


def test_the_d_only_against_optimistic_adam_sample_is_the_d_only_protocol_on_new_seeds():
    """bench/sweeps/unrolled-ring-25k-cpu-ortho-d-vs-optimistic.toml: the D-only sample's
    protocol and D-only arm, optimistic Adam as in unrolled-ring-25k-cpu-all, the declared
    comparison D-only against optimistic Adam, and 48 seeds no other sweep uses."""
    _declared_sample("unrolled-ring-25k-cpu-ortho-d-vs-optimistic", range(9000, 9048), {
        "adam+ortho(d)": "unrolled-ring-25k-cpu-ortho-d",
        "optimistic-adam": "unrolled-ring-25k-cpu-all"})  # fmt: skip


def test_the_d_only_against_optimistic_adam_verdicts_follow_from_its_committed_runs():
    """The README's figures for unrolled-ring-25k-cpu-ortho-d-vs-optimistic, recomputed with
    scipy from the committed runs.csv (seed-matched pairs, D-only − optimistic Adam, paired t;
    Holm over the three secondary metrics), and the report's own verdicts on them."""
    wide, modes, secondary, holm, table, verdicts = _committed_sample(
        "unrolled-ring-25k-cpu-ortho-d-vs-optimistic", range(9000, 9048), "adam+ortho(d)",
        "optimistic-adam")  # fmt: skip
    assert modes[:3] == pytest.approx((-1.729, -2.432, -1.026), abs=1e-3)
    assert modes[3] < 1e-3 and modes[4] == 48
    assert np.exp(secondary["fd"][:3]) == pytest.approx((6.45, 3.52, 11.82), abs=1e-2)
    assert secondary["high_quality"][:3] == pytest.approx((-0.0781, -0.1121, -0.0441), abs=1e-4)
    assert (*secondary["reverse_kl"][:3], secondary["reverse_kl"][4]) == pytest.approx(
        (0.315, 0.158, 0.471, 46), abs=1e-3)  # fmt: skip
    assert max(holm.values()) < 1e-3
    modes_d, modes_o = wide["final_modes"]["adam+ortho(d)"], wide["final_modes"]["optimistic-adam"]
    assert ((modes_d == 8).sum(), (modes_o == 8).sum()) == (13, 34)
    assert ((modes_d <= 2).sum(), (modes_o <= 2).sum()) == (6, 0)
    assert set(table["kind"]) == {"declared"}
    assert [verdicts[k] for k in ("modes", "fd", "high_quality", "reverse_kl")] == ["worse"] * 4


def test_the_d_only_against_both_sample_is_the_d_only_protocol_on_new_seeds():
    """bench/sweeps/unrolled-ring-25k-cpu-ortho-d-vs-both.toml: the D-only sample's protocol
    and D-only arm, ⊥Grad on both players as in unrolled-ring-25k-cpu-ortho-b (there unflushed:
    the workload options differ in flush_denormal alone), the declared comparison D-only against
    both, and 48 seeds no other sweep uses."""
    _declared_sample("unrolled-ring-25k-cpu-ortho-d-vs-both", range(10000, 10048), {
        "adam+ortho(d)": "unrolled-ring-25k-cpu-ortho-d",
        "adam+ortho": "unrolled-ring-25k-cpu-ortho-b"})  # fmt: skip


def test_the_d_only_against_both_verdicts_follow_from_its_committed_runs():
    """The README's figures for unrolled-ring-25k-cpu-ortho-d-vs-both, recomputed with scipy
    from the committed runs.csv (seed-matched pairs, D-only − both, paired t; Holm over the three
    secondary metrics; TOST for the equivalent one), and the report's own verdicts on them."""
    from scipy import stats

    wide, modes, secondary, holm, table, verdicts = _committed_sample(
        "unrolled-ring-25k-cpu-ortho-d-vs-both", range(10000, 10048), "adam+ortho(d)",
        "adam+ortho")  # fmt: skip
    assert (*modes[:4], modes[4]) == pytest.approx((1.083, 0.051, 2.115, 0.040, 48), abs=1e-3)
    modes_d, modes_b = wide["final_modes"]["adam+ortho(d)"], wide["final_modes"]["adam+ortho"]
    assert (modes_d - modes_b).std() == pytest.approx(3.55, abs=5e-3)  # the paired spread
    assert np.exp(secondary["fd"][:3]) == pytest.approx((0.344, 0.146, 0.807), abs=1e-3)
    assert secondary["high_quality"][:3] == pytest.approx((0.0138, -0.0070, 0.0346), abs=1e-4)
    assert (*secondary["reverse_kl"][:3], secondary["reverse_kl"][4]) == pytest.approx(
        (-0.161, -0.379, 0.058, 45), abs=1e-3)  # fmt: skip
    assert holm["fd"] == pytest.approx(0.0458, abs=1e-4)
    assert holm["high_quality"] > 0.05 and holm["reverse_kl"] > 0.05
    # equivalent within ±0.05 (TOST): 3 × its p bounds Holm's adjustment over the family
    d = wide["final_high_quality"]["adam+ortho(d)"] - wide["final_high_quality"]["adam+ortho"]
    tost = max(stats.ttest_1samp(d, -0.05, alternative="greater").pvalue,
               stats.ttest_1samp(d, 0.05, alternative="less").pvalue)  # fmt: skip
    assert 3 * tost < 0.05
    assert ((modes_d == 8).sum(), (modes_b == 8).sum()) == (14, 6)
    assert ((modes_d <= 2).sum(), (modes_b <= 2).sum()) == (7, 9)
    # The README's description after the fact: the pairs where the both-players run collapsed.
    collapsed = modes_b <= 2
    assert (modes_d - modes_b)[collapsed].mean() == pytest.approx(6.11, abs=5e-3)
    assert (modes_d - modes_b)[~collapsed].mean() == pytest.approx(-0.077, abs=1e-3)
    assert set(table["kind"]) == {"declared"}
    assert set(table["base"]) == {"adam+ortho"} and set(table["projected"]) == {"adam+ortho(d)"}
    assert [verdicts[k] for k in ("modes", "fd", "high_quality", "reverse_kl")] == [
        "better", "better", "equivalent", "undecided"]  # fmt: skip


def test_the_d_only_against_lookahead_sample_is_the_d_only_protocol_on_new_seeds():
    """bench/sweeps/unrolled-ring-25k-cpu-ortho-d-vs-lookahead.toml: the D-only sample's
    protocol and D-only arm, Lookahead around Adam as in unrolled-ring-25k-cpu-all (there
    unflushed: the workload options differ in flush_denormal alone), the declared comparison
    D-only against Lookahead, and 48 seeds no other sweep uses."""
    _declared_sample("unrolled-ring-25k-cpu-ortho-d-vs-lookahead", range(11000, 11048), {
        "adam+ortho(d)": "unrolled-ring-25k-cpu-ortho-d",
        "lookahead(adam)": "unrolled-ring-25k-cpu-all"})  # fmt: skip


def test_the_d_only_against_lookahead_verdicts_follow_from_its_committed_runs():
    """The README's figures for unrolled-ring-25k-cpu-ortho-d-vs-lookahead, recomputed with
    scipy from the committed runs.csv (seed-matched pairs, D-only − Lookahead, paired t; Holm over
    the three secondary metrics), the report's own verdicts on them, and the README's figures on
    the D-only arm's sharpness across its four samples (after the fact)."""
    import pandas as pd
    from scipy import stats

    wide, modes, secondary, holm, table, verdicts = _committed_sample(
        "unrolled-ring-25k-cpu-ortho-d-vs-lookahead", range(11000, 11048), "adam+ortho(d)",
        "lookahead(adam)")  # fmt: skip
    assert (*modes[:4], modes[4]) == pytest.approx((-0.958, -1.687, -0.230, 0.011, 48), abs=1e-3)
    modes_d, modes_l = wide["final_modes"]["adam+ortho(d)"], wide["final_modes"]["lookahead(adam)"]
    d = modes_d - modes_l
    assert d.std() == pytest.approx(2.51, abs=5e-3)  # the paired spread, as the file assumed
    assert ((d < 0).sum(), (d > 0).sum(), (d == 0).sum()) == (23, 9, 16)
    assert np.exp(secondary["fd"][:3]) == pytest.approx((14.32, 8.03, 25.56), abs=1e-2)
    assert secondary["high_quality"][:3] == pytest.approx((-0.0414, -0.0581, -0.0248), abs=1e-4)
    assert (*secondary["reverse_kl"][:3], secondary["reverse_kl"][4]) == pytest.approx(
        (0.042, -0.124, 0.207, 46), abs=1e-3)  # fmt: skip
    assert holm["fd"] < 1e-3 and holm["high_quality"] < 1e-3 and holm["reverse_kl"] > 0.05
    assert ((modes_d == 8).sum(), (modes_l == 8).sum()) == (14, 22)
    assert ((modes_d <= 2).sum(), (modes_l <= 2).sum()) == (5, 0)
    collapsed = modes_d <= 2  # the README's description after the fact
    assert d[collapsed].mean() == pytest.approx(-5.6, abs=1e-9)
    assert d[~collapsed].mean() == pytest.approx(-0.419, abs=1e-3)
    assert set(table["kind"]) == {"declared"}
    assert set(table["base"]) == {"lookahead(adam)"}
    assert [verdicts[k] for k in ("modes", "fd", "high_quality", "reverse_kl")] == [
        "worse", "worse", "worse", "undecided"]  # fmt: skip
    # The D-only arm's final high-quality fraction in its four samples: the first is the sharp one.
    names = [f"unrolled-ring-25k-cpu-ortho-d{s}" for s in ("", "-vs-optimistic", "-vs-both",
                                                          "-vs-lookahead")]  # fmt: skip
    hq = []
    for name in names:
        runs = pd.read_csv(RESULTS / name / "report" / "runs.csv")
        hq.append(runs.loc[runs["label"] == "adam+ortho(d)", "final_high_quality"].to_numpy())
    assert [round(float(np.median(h)), 4) for h in hq] == [0.0155, 0.0087, 0.0074, 0.0084]
    assert stats.kruskal(*hq).pvalue == pytest.approx(0.020, abs=5e-4)
    assert [round(stats.mannwhitneyu(hq[0], h).pvalue, 3) for h in hq[1:3]] == [0.024, 0.044]
    # bench agree's tables beside the report: each arm against its own earlier sample
    report = RESULTS / names[3] / "report"
    agree = pd.read_csv(report / "agreement-with-unrolled-ring-25k-cpu-ortho-d.csv")
    assert dict(zip(agree["metric"], agree["verdict"] == "differ")) == {
        "fd": False, "high_quality": True, "modes": False, "reverse_kl": False}  # fmt: skip
    row = agree.set_index("metric").loc["high_quality"]
    assert (row["mean_a"], row["mean_b"], row["p_value"], row["p_adjusted"]) == pytest.approx(
        (0.0351, 0.0099, 0.0006, 0.0024), abs=1e-4)  # fmt: skip
    row = _agrees_with(names[3], "unrolled-ring-25k-cpu-all", "lookahead(adam)")
    assert (row["difference"], row["ci_lo"], row["ci_hi"], row["p_value"]) == pytest.approx(
        (-0.052, -0.699, 0.595, 0.95), abs=1e-3)  # fmt: skip


def test_the_lookahead_with_d_only_sample_is_the_lookahead_arm_with_the_projection_on_new_seeds():
    """bench/sweeps/unrolled-ring-25k-cpu-lookahead-ortho-d.toml: the D-only-against-Lookahead
    sample's protocol and Lookahead arm, the same Lookahead with ⊥Grad on D only (its optimizer
    the Lookahead arm's plus ortho = "weights" and ortho_players = "d", nothing else), the
    declared comparison with the projection against without, and 48 seeds no other sweep uses."""
    _declared_with_projection_on_d("unrolled-ring-25k-cpu-lookahead-ortho-d", range(12000, 12048),
                                   "lookahead(adam)", "lookahead",
                                   "unrolled-ring-25k-cpu-ortho-d-vs-lookahead")  # fmt: skip


def test_the_lookahead_with_d_only_verdicts_follow_from_its_committed_runs():
    """The README's figures for unrolled-ring-25k-cpu-lookahead-ortho-d, recomputed with scipy
    from the committed runs.csv (seed-matched pairs, with − without the projection on D, paired
    t; Holm over the three secondary metrics), the report's own verdicts on them, and Lookahead's
    agreement with its earlier sample."""
    import pandas as pd

    name, arm, base = "unrolled-ring-25k-cpu-lookahead-ortho-d", "lookahead(adam)+ortho(d)", \
        "lookahead(adam)"  # fmt: skip
    wide, modes, secondary, holm, table, verdicts = _committed_sample(
        name, range(12000, 12048), arm, base)
    assert (*modes[:4], modes[4]) == pytest.approx((0.333, -0.124, 0.791, 0.149, 48), abs=1e-3)
    with_, without = wide["final_modes"][arm], wide["final_modes"][base]
    d = with_ - without
    assert d.std() == pytest.approx(1.58, abs=5e-3)
    assert ((d > 0).sum(), (d < 0).sum(), (d == 0).sum()) == (17, 13, 18)
    assert (with_.mean(), without.mean()) == pytest.approx((7.396, 7.062), abs=1e-3)
    assert ((with_ == 8).sum(), (without == 8).sum(), with_.min(), without.min()) == (27, 25, 5, 4)
    assert np.exp(secondary["fd"][:3]) == pytest.approx((6.69, 4.57, 9.79), abs=1e-2)
    assert secondary["high_quality"][:3] == pytest.approx((-0.0564, -0.0802, -0.0326), abs=1e-4)
    assert (*secondary["reverse_kl"][:3], secondary["reverse_kl"][4]) == pytest.approx(
        (-0.368, -0.482, -0.254, 48), abs=1e-3)  # fmt: skip
    assert max(holm.values()) < 1e-3
    hq = wide["final_high_quality"]
    assert (hq[arm].mean(), hq[base].mean()) == pytest.approx((0.0047, 0.0611), abs=1e-4)
    assert (hq[arm].median(), hq[base].median()) == pytest.approx((0.0046, 0.0305), abs=1e-4)
    assert round(hq[arm].max() * 5120) == 39  # every projected run under 1% sharp
    assert ((hq[arm] * 5120).median(), (hq[base] * 5120).median()) == (23.5, 156.0)
    assert set(table["kind"]) == {"ortho"}  # the report's own pair: the arm and its twin
    # Lookahead's runs end on 0-2 modes in none of its three samples of this protocol
    runs = pd.concat([pd.read_csv(RESULTS / n / "report" / "runs.csv") for n in (
        "unrolled-ring-25k-cpu-all", "unrolled-ring-25k-cpu-ortho-d-vs-lookahead", name)])
    lookahead = runs[runs["label"] == base]
    assert (len(lookahead), (lookahead["final_modes"] <= 2).sum()) == (128, 0)
    assert set(table["base"]) == {base} and set(table["projected"]) == {arm}
    assert [verdicts[k] for k in ("modes", "fd", "high_quality", "reverse_kl")] == [
        "undecided", "worse", "worse", "better"]  # fmt: skip
    evals = table.set_index("statistic").loc["grad_evals_to_target"]
    assert (evals["verdict"], *np.exp([evals["estimate"], evals["estimate_ci_lo"],
                                       evals["estimate_ci_hi"]])) == (
        "worse", pytest.approx(1.48, abs=5e-3), pytest.approx(1.12, abs=5e-3),
        pytest.approx(1.96, abs=5e-3))  # fmt: skip
    row = _agrees_with(name, "unrolled-ring-25k-cpu-ortho-d-vs-lookahead", base)
    assert (row["difference"], row["ci_lo"], row["ci_hi"], row["p_value"]) == pytest.approx(
        (0.208, -0.298, 0.715, 0.464), abs=1e-3)  # fmt: skip


def test_a_few_evenly_spread_samples_bias_the_reverse_kl_up_not_down():
    """The README's reading of the projected arm's reverse KL: 24 high-quality samples of a
    perfectly even generator over 8 modes give an empirical KL to the uniform of about 0.16
    (simulated), so the arm's 0.22 over such counts is no artefact of the few samples."""
    from ogan.metrics.modes import mode_metrics

    rng = np.random.default_rng(0)
    centers = np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1)
    kls = [mode_metrics(centers[rng.integers(0, 8, 24)], centers, 0.01)["reverse_kl"]
           for _ in range(4000)]  # fmt: skip
    assert np.mean(kls) == pytest.approx(0.16, abs=0.01)
    assert mode_metrics(centers[np.arange(24) % 8], centers, 0.01)["reverse_kl"] == pytest.approx(0)


def test_the_optimistic_against_lookahead_sample_is_both_flushed_arms_on_new_seeds():
    """bench/sweeps/unrolled-ring-25k-cpu-optimistic-vs-lookahead.toml: optimistic Adam as in
    the D-only-against-optimistic-Adam sample, Lookahead as in the Lookahead-with-⊥Grad-on-D
    sample, the same protocol (flush included), the declared head-to-head optimistic Adam
    against Lookahead, and 48 seeds no other sweep uses."""
    _declared_sample("unrolled-ring-25k-cpu-optimistic-vs-lookahead", range(13000, 13048), {
        "optimistic-adam": "unrolled-ring-25k-cpu-ortho-d-vs-optimistic",
        "lookahead(adam)": "unrolled-ring-25k-cpu-lookahead-ortho-d"})  # fmt: skip


def test_the_optimistic_against_lookahead_verdicts_follow_from_its_committed_runs():
    """The README's figures for unrolled-ring-25k-cpu-optimistic-vs-lookahead (the five whole
    blocks the file's clock rule let run: seeds 13000-13039), recomputed with scipy from the
    committed runs.csv (seed-matched pairs, optimistic Adam − Lookahead, paired t; Holm over the
    three secondary metrics), the report's own verdicts, each arm's agreement with its earlier
    sample, and the exploratory figure on seeds 4000-4031 that the file set out to test."""
    import pandas as pd
    from scipy import stats

    name, arm, base = "unrolled-ring-25k-cpu-optimistic-vs-lookahead", "optimistic-adam", \
        "lookahead(adam)"  # fmt: skip
    wide, modes, secondary, holm, table, verdicts = _committed_sample(
        name, range(13000, 13040), arm, base)
    assert (*modes[:4], modes[4]) == pytest.approx((0.450, 0.0098, 0.890, 0.0454, 40), abs=1e-3)
    opt, look = wide["final_modes"][arm], wide["final_modes"][base]
    d = opt - look
    assert d.std() == pytest.approx(1.377, abs=1e-3)
    assert ((d > 0).sum(), (d < 0).sum(), (d == 0).sum()) == (14, 5, 21)
    assert (opt.mean(), look.mean()) == pytest.approx((7.55, 7.10), abs=1e-3)
    assert ((opt == 8).sum(), (look == 8).sum(), opt.min(), look.min()) == (29, 23, 4, 3)
    assert np.exp(secondary["fd"][:3]) == pytest.approx((1.916, 1.205, 3.048), abs=1e-3)
    assert secondary["high_quality"][:3] == pytest.approx((0.0765, 0.0335, 0.1196), abs=1e-4)
    assert (*secondary["reverse_kl"][:3], secondary["reverse_kl"][4]) == pytest.approx(
        (-0.0856, -0.2099, 0.0387, 40), abs=1e-4)  # fmt: skip
    assert (holm["fd"], holm["high_quality"], holm["reverse_kl"]) == pytest.approx(
        (0.0145, 0.0027, 0.1715), abs=1e-4)  # fmt: skip
    assert set(table["kind"]) == {"declared"}
    assert set(table["base"]) == {base} and set(table["projected"]) == {arm}
    assert [verdicts[k] for k in ("modes", "fd", "high_quality", "reverse_kl")] == [
        "better", "worse", "better", "undecided"]  # fmt: skip
    # the exploratory figure the file set out to test: seeds 4000-4031, unflushed, after the fact
    earlier = pd.read_csv(RESULTS / "unrolled-ring-25k-cpu-all" / "report" / "runs.csv").pivot(
        index="seed", columns="label", values="final_modes")  # fmt: skip
    d0 = earlier[arm] - earlier[base]
    assert (len(d0), d0.mean(), d0.std()) == pytest.approx((32, 0.8125, 1.575), abs=1e-3)
    assert stats.ttest_1samp(d0, 0.0).pvalue == pytest.approx(0.0065, abs=1e-4)
    # bench agree: each arm against its own earlier flushed sample, no difference detected
    for source, label, figures in (
        ("unrolled-ring-25k-cpu-ortho-d-vs-optimistic", arm, (0.154, -0.288, 0.596)),
        ("unrolled-ring-25k-cpu-lookahead-ortho-d", base, (0.0375, -0.514, 0.589)),
    ):
        row = _agrees_with(name, source, label)
        assert (row["difference"], row["ci_lo"], row["ci_hi"]) == pytest.approx(figures, abs=1e-3)


def test_the_optimistic_with_d_only_sample_is_the_optimistic_arm_with_the_projection_on_new_seeds():
    """bench/sweeps/unrolled-ring-25k-cpu-optimistic-ortho-d.toml: the optimistic-against-
    Lookahead sample's protocol and optimistic Adam arm, the same optimistic Adam with ⊥Grad on D
    only (its optimizer the other arm's plus ortho = "weights" and ortho_players = "d", nothing
    else), the declared comparison with the projection against without, and 48 seeds no other
    sweep uses."""
    _declared_with_projection_on_d("unrolled-ring-25k-cpu-optimistic-ortho-d", range(14000, 14048),
                                   "optimistic-adam", "optimistic-adam",
                                   "unrolled-ring-25k-cpu-optimistic-vs-lookahead")  # fmt: skip


def test_the_optimistic_with_d_only_verdicts_follow_from_its_committed_runs():
    """The README's figures for unrolled-ring-25k-cpu-optimistic-ortho-d (the four whole blocks
    the file's clock rule let run: seeds 14000-14031), recomputed with scipy from the committed
    runs.csv (seed-matched pairs, with − without the projection on D, paired t; Holm over the
    three secondary metrics), the report's own verdicts on them, and optimistic Adam's agreement
    with its two earlier flushed samples."""
    from scipy import stats

    name, arm, base = "unrolled-ring-25k-cpu-optimistic-ortho-d", "optimistic-adam+ortho(d)", \
        "optimistic-adam"  # fmt: skip
    wide, modes, secondary, holm, table, verdicts = _committed_sample(
        name, range(14000, 14032), arm, base)
    assert (*modes[:4], modes[4]) == pytest.approx((-0.906, -1.427, -0.385, 0.00126, 32),
                                                   abs=1e-3)  # fmt: skip
    with_, without = wide["final_modes"][arm], wide["final_modes"][base]
    d = with_ - without
    assert d.std() == pytest.approx(1.445, abs=1e-3)
    assert ((d > 0).sum(), (d < 0).sum(), (d == 0).sum()) == (5, 20, 7)
    assert stats.wilcoxon(d[d != 0]).pvalue == pytest.approx(0.0022, abs=1e-4)
    assert (with_.mean(), without.mean()) == pytest.approx((6.656, 7.5625), abs=1e-3)
    assert ((with_ == 8).sum(), (without == 8).sum(), with_.min(), without.min()) == (8, 22, 3, 5)
    assert (((without == 8) & (with_ < 8)).sum(), ((with_ == 8) & (without < 8)).sum()) == (18, 4)
    assert np.exp(secondary["fd"][:3]) == pytest.approx((4.193, 2.663, 6.600), abs=1e-3)
    assert secondary["high_quality"][:3] == pytest.approx((-0.1016, -0.1498, -0.0533), abs=1e-4)
    assert (*secondary["reverse_kl"][:3], secondary["reverse_kl"][4]) == pytest.approx(
        (0.1569, 0.0011, 0.3127, 32), abs=1e-4)  # fmt: skip
    assert (holm["fd"], holm["high_quality"], holm["reverse_kl"]) == pytest.approx(
        (1.05e-6, 3.25e-4, 0.0485), abs=1e-4)  # fmt: skip
    hq = wide["final_high_quality"]
    assert (hq[arm].mean(), hq[base].mean()) == pytest.approx((0.0118, 0.1133), abs=1e-4)
    assert ((hq[arm] * 5120).median(), (hq[base] * 5120).median()) == (57.0, 270.0)
    assert round(hq[arm].max() * 5120) == 161  # every projected run under 3.2% sharp
    assert set(table["kind"]) == {"ortho"}  # the report's own pair: the arm and its twin
    assert set(table["base"]) == {base} and set(table["projected"]) == {arm}
    assert [verdicts[k] for k in ("modes", "fd", "high_quality", "reverse_kl")] == ["worse"] * 4
    assert [verdicts[k] for k in ("growth_g", "growth_d", "tail_g", "tail_d")] == [
        "worse", "equivalent", "equivalent", "equivalent"]  # fmt: skip
    # bench agree: optimistic Adam against its two earlier flushed samples, no difference detected
    for source, figures in (
        ("unrolled-ring-25k-cpu-optimistic-vs-lookahead", (0.0125, -0.392, 0.417)),
        ("unrolled-ring-25k-cpu-ortho-d-vs-optimistic", (0.167, -0.253, 0.586)),
    ):
        row = _agrees_with(name, source, base)
        assert (row["difference"], row["ci_lo"], row["ci_hi"]) == pytest.approx(figures, abs=1e-3)


def _reuses_the_optimistic_arm(name: str, new: str):
    """The sweep ``name`` (one of :data:`REUSERS`): its source's protocol exactly (workload
    options, flush included, length, evaluation), two arms: optimistic Adam on the source's first
    32 seeds as the very same runs (the same run ids: reused, not rerun), and ``new`` as in
    unrolled-ring-25k-cpu-rest.toml (up to the flush) on those seeds and no other sweep's.
    Returns the sweep, its specs of ``new`` and the source's specs."""
    from bench.config import load_sweep

    sweep = load_sweep(name, device="cpu")
    source = load_sweep(REUSERS[name], device="cpu").specs
    seeds = list(range(14000, 14032))
    ours = {label: [s for s in sweep.specs if s.label == label]
            for label in {s.label for s in sweep.specs}}  # fmt: skip
    assert sorted(ours) == sorted([new, "optimistic-adam"])
    reused = {s.run_id for s in source if s.label == "optimistic-adam" and s.seed in seeds}
    assert {s.run_id for s in ours["optimistic-adam"]} == reused and len(reused) == 32
    assert sorted(s.seed for s in ours[new]) == seeds
    rest = [s for s in load_sweep("unrolled-ring-25k-cpu-rest", device="cpu").specs
            if s.label == new]  # fmt: skip
    assert {s.optimizer for s in ours[new]} == {s.optimizer for s in rest} and rest
    assert _unflushed(ours[new]) == _unflushed(rest)
    assert {(s.workload, s.workload_options, s.steps, s.eval_every) for s in sweep.specs} == {
        (s.workload, s.workload_options, s.steps, s.eval_every) for s in source}  # fmt: skip
    others = _seeds_of_every_other_sweep(name) - {s.seed for s in source}
    assert not others & set(seeds)  # no sweep but the reused ones has these seeds
    return sweep, ours[new], source


def test_the_extra_against_optimistic_sample_reuses_the_optimistic_arm_and_adds_extra_adam():
    """bench/sweeps/unrolled-ring-25k-cpu-extra-vs-optimistic.toml: the optimistic-with-D-only
    sample's optimistic Adam arm reused and Extra-Adam added (:func:`_reuses_the_optimistic_arm`),
    both declared comparisons (equal steps, equal gradient evaluations), and step 12,500 (half
    the steps: Extra-Adam's two evaluations a step) one of the evaluations."""
    from bench.config import Comparison

    sweep, _, _ = _reuses_the_optimistic_arm("unrolled-ring-25k-cpu-extra-vs-optimistic",
                                             "extra-adam")  # fmt: skip
    assert sweep.compare == (
        Comparison("extra-adam", "optimistic-adam", "steps"),
        Comparison("extra-adam", "optimistic-adam", "grad_evals"),
    )
    (steps,), (every,) = {s.steps for s in sweep.specs}, {s.eval_every for s in sweep.specs}
    assert steps == 25000 and (steps // 2) % every == 0


def test_the_surgery_against_optimistic_sample_reuses_the_optimistic_arm_and_adds_surgery():
    """bench/sweeps/unrolled-ring-25k-cpu-surgery-vs-optimistic.toml: the optimistic-with-D-only
    sample's optimistic Adam arm reused (the runs the Extra-Adam sample reused too) and Adam + D
    gradient surgery added (:func:`_reuses_the_optimistic_arm`), new on these seeds, and the one
    comparison declared, at equal steps."""
    from bench.config import Comparison, load_sweep

    name = "unrolled-ring-25k-cpu-surgery-vs-optimistic"
    sweep, surgery, source = _reuses_the_optimistic_arm(name, "adam+surgery")
    extra = load_sweep("unrolled-ring-25k-cpu-extra-vs-optimistic", device="cpu").specs
    ids = {s.run_id for s in sweep.specs if s.label == "optimistic-adam"}
    assert ids == {s.run_id for s in extra if s.label == "optimistic-adam"}
    assert all(("surgery", True) in s.optimizer for s in surgery)
    assert not any(dict(s.optimizer).get("surgery") for s in source + extra)  # new on them
    assert sweep.compare == (Comparison("adam+surgery", "optimistic-adam", "steps"),)


def test_the_d_only_against_surgery_sample_is_both_projections_on_d_on_new_seeds():
    """bench/sweeps/unrolled-ring-25k-cpu-ortho-d-vs-surgery.toml: ⊥Grad on D as in the D-only
    sample, surgery as in the surgery-against-optimistic sample (whose runs are not reused: both
    arms new, on 32 seeds no other sweep uses), the same protocol (flush included), and the
    declared head-to-head ⊥Grad on D against surgery."""
    _declared_sample("unrolled-ring-25k-cpu-ortho-d-vs-surgery", range(15000, 15032), {
        "adam+ortho(d)": "unrolled-ring-25k-cpu-ortho-d",
        "adam+surgery": "unrolled-ring-25k-cpu-surgery-vs-optimistic"})  # fmt: skip


def test_the_extra_against_optimistic_verdicts_follow_from_its_committed_runs():
    """The README's figures for unrolled-ring-25k-cpu-extra-vs-optimistic (32 pairs), recomputed
    with scipy from the committed runs.csv (final values: equal steps) and budget.csv (Extra-Adam
    at step 12,500 against optimistic Adam at 25,000: equal gradient evaluations), Holm over the
    two confirmatory comparisons and over the six secondary ones, the report's own verdicts, and
    Extra-Adam's and optimistic Adam's agreement with seeds 4000-4031."""
    import pandas as pd
    from scipy import stats

    report = RESULTS / "unrolled-ring-25k-cpu-extra-vs-optimistic" / "report"
    arm, base = "extra-adam", "optimistic-adam"
    steps = pd.read_csv(report / "runs.csv").pivot(index="seed", columns="label")
    budget = pd.read_csv(report / "budget.csv")
    cost = budget.pivot(index="seed", columns="optimizer")
    assert list(steps.index) == list(cost.index) == list(range(14000, 14032))
    assert set(budget.loc[budget["optimizer"] == arm, "budget_step"]) == {12500}
    assert set(budget.loc[budget["optimizer"] == base, "budget_step"]) == {25000}
    assert set(budget["budget_grad_evals"]) == {50000} and not budget["nonfinite"].any()
    assert (cost["final_modes"][base] == steps["final_modes"][base]).all()  # its finals
    at = {"steps": _paired_t(steps, "final_modes", arm, base),
          "cost": _paired_t(cost, "final_modes", arm, base)}  # fmt: skip
    assert (*at["steps"][:4], at["steps"][4]) == pytest.approx((0.125, -0.215, 0.465, 0.458, 32),
                                                                abs=1e-3)  # fmt: skip
    assert (*at["cost"][:4], at["cost"][4]) == pytest.approx((-0.594, -0.958, -0.229, 0.0023, 32),
                                                              abs=1e-3)  # fmt: skip
    d_steps = steps["final_modes"][arm] - steps["final_modes"][base]
    d_cost = cost["final_modes"][arm] - cost["final_modes"][base]
    assert (d_steps.std(), d_cost.std()) == pytest.approx((0.942, 1.012), abs=1e-3)
    assert ((d_steps > 0).sum(), (d_steps < 0).sum(), (d_steps == 0).sum()) == (8, 6, 18)
    assert ((d_cost > 0).sum(), (d_cost < 0).sum(), (d_cost == 0).sum()) == (0, 10, 22)
    assert stats.wilcoxon(d_cost[d_cost != 0]).pvalue == pytest.approx(0.0020, abs=1e-4)
    eights = [(steps["final_modes"][arm] == 8).sum(), (cost["final_modes"][arm] == 8).sum(),
              (steps["final_modes"][base] == 8).sum()]  # fmt: skip
    assert eights == [25, 15, 22]
    assert (cost["final_modes"][arm].mean(), steps["final_modes"][arm].mean(),
            steps["final_modes"][base].mean()) == pytest.approx((6.969, 7.688, 7.5625), abs=1e-3)
    assert cost["final_modes"][arm].min() == 4
    means = {col: (cost[col][arm].mean(), steps[col][arm].mean(), steps[col][base].mean())
             for col in ("final_high_quality", "final_reverse_kl")}  # fmt: skip
    assert means["final_high_quality"] == pytest.approx((0.035, 0.100, 0.113), abs=1e-3)
    assert means["final_reverse_kl"] == pytest.approx((0.53, 0.34, 0.40), abs=6e-3)
    fd = [np.exp(np.log(f).mean()) for f in (cost["final_fd"][arm], steps["final_fd"][arm],
                                              steps["final_fd"][base])]  # fmt: skip
    assert fd == pytest.approx([0.0013, 0.0014, 0.0021], abs=6e-5)
    # confirmatory: Holm over the two; equal steps decided by its TOST (p of equivalence)
    paired = pd.read_csv(report / "paired.csv").set_index("kind")
    assert paired.loc["equal-evals", "p_adjusted"] == pytest.approx(2 * at["cost"][3], rel=1e-6)
    assert paired.loc["declared", "p_equivalence_adjusted"] == pytest.approx(0.0315, abs=1e-4)
    assert (paired.loc["declared", "verdict"], paired.loc["equal-evals", "verdict"]) == (
        "equivalent", "worse")  # fmt: skip
    # secondary: the three metrics at both budgets, Holm over the six
    secondary = {(k, where): _paired_t(frame, col, arm, base, log)
                 for k, (col, log) in SECONDARY.items()
                 for where, frame in (("steps", steps), ("cost", cost))}  # fmt: skip
    holm = _holm({k: t[3] for k, t in secondary.items()})
    assert secondary[("high_quality", "cost")][:3] == pytest.approx((-0.0783, -0.1253, -0.0313),
                                                                      abs=1e-4)  # fmt: skip
    assert holm[("high_quality", "cost")] == pytest.approx(0.0113, abs=1e-4)
    assert secondary[("reverse_kl", "cost")][:3] == pytest.approx((0.130, 0.019, 0.241), abs=1e-3)
    assert holm[("reverse_kl", "cost")] == pytest.approx(0.118, abs=1e-3)
    assert np.exp(secondary[("fd", "steps")][:3]) == pytest.approx((0.661, 0.420, 1.040), abs=1e-3)
    assert all(holm[k] > 0.05 for k in holm if k != ("high_quality", "cost"))
    table = pd.read_csv(report / "comparisons.csv")
    verdicts = {(r.kind, r.statistic): r.verdict for r in table.itertuples()}
    assert verdicts[("equal-evals", "high_quality")] == "worse"
    assert {verdicts[("declared", k)] for k in ("high_quality", "reverse_kl", "fd")} == {
        "undecided"}  # fmt: skip
    assert (verdicts[("declared", "growth_g")], verdicts[("declared", "growth_d")]) == (
        "worse", "worse")  # fmt: skip
    assert not (table["kind"].eq("equal-evals") & table["family"].eq("exploratory")).any()
    assert (verdicts[("declared", "tail_g")], verdicts[("declared", "tail_d")]) == (
        "equivalent", "equivalent")  # fmt: skip
    evals = table.set_index(["kind", "statistic"]).loc[("declared", "grad_evals_to_target")]
    assert (evals["verdict"], evals["n_pairs"]) == ("worse", 31)
    assert np.exp([evals["estimate"], evals["estimate_ci_lo"], evals["estimate_ci_hi"]]) == (
        pytest.approx([1.88, 1.41, 2.51], abs=6e-3))  # fmt: skip
    # the equal-steps curve: behind mid-run, level at 12,500 steps (where the equal-cost arm is
    # read: optimistic Adam there, 6.969 - 0.0625 = 6.906 modes), level at the end
    curve = pd.read_csv(report / "paired_curves.csv").set_index("step")
    assert set(curve["kind"]) == {"declared"}
    assert curve.loc[10000, ["estimate", "estimate_ci_lo", "estimate_ci_hi"]].tolist() == (
        pytest.approx([-1.156, -1.764, -0.549], abs=1e-3))  # fmt: skip
    assert curve.loc[12500, "estimate"] == 0.0625
    assert (curve.loc[6250:10000, "estimate_ci_hi"] < 0).all()
    level = pd.concat([curve.loc[1250:5000], curve.loc[11250:]])  # 0 inside the interval
    assert ((level["estimate_ci_lo"] < 0) & (level["estimate_ci_hi"] > 0)).all()
    assert curve.loc[25000, "estimate"] == pytest.approx(at["steps"][0])
    # the step costs: Extra-Adam's two gradient evaluations, about twice the time
    alone = steps["time_per_step_alone"].median()
    assert alone[arm] / alone[base] == pytest.approx(1.94, abs=0.01)
    # bench agree against seeds 4000-4031 (unflushed): no difference detected, either optimizer
    agree = pd.read_csv(report / "agreement-with-unrolled-ring-25k-cpu-all.csv")
    assert set(agree["optimizer"]) == {arm, base} and len(agree) == 8
    assert (agree["verdict"] == "no difference detected").all()
    modes = agree[agree["metric"] == "modes"].set_index("optimizer")
    assert (modes.loc[arm, "difference"], modes.loc[arm, "ci_lo"], modes.loc[arm, "ci_hi"]) == (
        pytest.approx((-0.125, -0.422, 0.172), abs=1e-3))  # fmt: skip


def test_the_surgery_against_optimistic_verdicts_follow_from_its_committed_runs():
    """The README's figures for unrolled-ring-25k-cpu-surgery-vs-optimistic (32 pairs),
    recomputed with scipy from the committed runs.csv (seed-matched pairs, surgery − optimistic
    Adam, paired t; Holm over the three secondary metrics), the report's own verdicts, the
    curve, the step costs, and both optimizers' agreement with seeds 4000-4031."""
    import pandas as pd
    from scipy import stats

    name, arm, base = "unrolled-ring-25k-cpu-surgery-vs-optimistic", "adam+surgery", \
        "optimistic-adam"  # fmt: skip
    wide, modes, secondary, holm, table, verdicts = _committed_sample(
        name, range(14000, 14032), arm, base)
    assert (*modes[:3], modes[4]) == pytest.approx((-2.594, -3.645, -1.542, 32), abs=1e-3)
    assert modes[3] == pytest.approx(1.97e-5, rel=1e-2)
    surgery, optimistic = wide["final_modes"][arm], wide["final_modes"][base]
    d = surgery - optimistic
    assert d.std() == pytest.approx(2.917, abs=1e-3)
    assert ((d > 0).sum(), (d < 0).sum(), (d == 0).sum()) == (1, 19, 12)
    assert stats.wilcoxon(d[d != 0]).pvalue < 0.001
    assert (surgery.mean(), optimistic.mean()) == pytest.approx((4.969, 7.5625), abs=1e-3)
    assert ((surgery == 8).sum(), (optimistic == 8).sum()) == (11, 22)
    assert ((surgery <= 2).sum(), (optimistic <= 2).sum(), (surgery == 0).sum()) == (12, 0, 4)
    hq, fd = wide["final_high_quality"], wide["final_fd"]
    assert (hq[arm].mean(), hq[base].mean()) == pytest.approx((0.033, 0.113), abs=6e-4)
    assert [np.exp(np.log(fd[k]).mean()) for k in (arm, base)] == pytest.approx(
        [0.025, 0.0021], abs=6e-4)  # fmt: skip
    assert secondary["high_quality"][:3] == pytest.approx((-0.080, -0.117, -0.044), abs=6e-4)
    assert np.exp(secondary["fd"][:3]) == pytest.approx((12.0, 5.9, 24.3), abs=0.06)
    assert (*secondary["reverse_kl"][:3], secondary["reverse_kl"][4]) == pytest.approx(
        (0.371, 0.171, 0.571, 28), abs=1e-3)  # fmt: skip
    rkl = wide["final_reverse_kl"][arm]
    assert set(surgery[rkl.isna()]) == {0.0} and rkl.isna().sum() == 4  # no mode, no KL
    assert max(holm.values()) < 0.001
    assert set(table["kind"]) == {"declared"} and set(table["projected"]) == {arm}
    assert [verdicts[k] for k in ("modes", "fd", "high_quality", "reverse_kl")] == ["worse"] * 4
    assert [verdicts[k] for k in ("growth_g", "growth_d", "tail_g", "tail_d")] == [
        "better", "worse", "worse", "better"]  # fmt: skip
    explore = table.set_index("statistic")
    assert explore.loc[["growth_g", "growth_d"], "estimate"].tolist() == pytest.approx(
        [-0.17, 0.19], abs=6e-3)  # fmt: skip
    assert np.exp(explore.loc[["tail_g", "tail_d"], "estimate"]).tolist() == pytest.approx(
        [1.30, 0.94], abs=6e-3)  # fmt: skip
    evals = explore.loc["grad_evals_to_target"]
    assert (evals["verdict"], evals["n_pairs"]) == ("worse", 29)
    assert np.exp([evals["estimate"], evals["estimate_ci_lo"], evals["estimate_ci_hi"]]) == (
        pytest.approx([1.38, 1.10, 1.74], abs=6e-3))  # fmt: skip
    assert (explore.loc["reached_target", "verdict"], explore.loc["reached_target", "p_value"]) == (
        "undecided", 0.25)  # fmt: skip
    assert all(explore.loc[f"{k}_{p}", "verdict"] == "not observed"
               for k in ("vanishing", "exploding") for p in "gd")  # fmt: skip
    # it covers the modes and loses them late
    reached = wide["steps_to_target"]
    assert (reached[arm].notna().sum(), reached[base].notna().sum()) == (29, 32)
    lost = reached[arm].notna()
    assert ((lost & (surgery < 8)).sum(), (lost & (surgery <= 2)).sum()) == (18, 9)
    assert (reached[arm].median(), reached[base].median()) == (3750, 3125)
    curve = pd.read_csv(RESULTS / name / "report" / "paired_curves.csv").set_index("step")
    at = curve["estimate"]
    assert (at.loc[3750], at.loc[12500], at.loc[21250], at.loc[25000]) == pytest.approx(
        (-1.094, -0.6875, -1.6875, modes[0]), abs=1e-3)  # fmt: skip
    assert curve.loc[3750, ["estimate_ci_lo", "estimate_ci_hi"]].tolist() == pytest.approx(
        [-1.70, -0.49], abs=6e-3)  # fmt: skip
    middle = curve.loc[5000:12500]
    assert (middle["estimate"].min(), middle["estimate"].max()) == (-0.8125, -0.5)
    assert (middle["estimate_ci_hi"] > 0).sum() == 4 and at.loc[13750] == -1.25
    # the cost: one gradient evaluation of each player a step, about optimistic Adam's time
    per_step = wide["grad_evals"] / wide["steps_completed"]
    assert set(per_step[arm]) == set(per_step[base]) == {2.0}
    alone, member = wide["time_per_step_alone"].median(), wide["time_per_step"].median()
    assert (alone[arm] * 1e3, alone[base] * 1e3) == pytest.approx((9.5, 9.0), abs=0.05)
    assert alone[arm] / alone[base] == pytest.approx(1.05, abs=0.005)
    assert (member[arm] * 1e3, member[base] * 1e3) == pytest.approx((7.90, 7.91), abs=0.005)
    # bench agree against seeds 4000-4031 (unflushed): no difference detected, either optimizer
    agree = pd.read_csv(RESULTS / name / "report" / "agreement-with-unrolled-ring-25k-cpu-all.csv")
    assert set(agree["optimizer"]) == {arm, base} and len(agree) == 8
    assert (agree["verdict"] == "no difference detected").all()
    row = agree[agree["metric"] == "modes"].set_index("optimizer").loc[arm]
    assert (row["difference"], row["ci_lo"], row["ci_hi"], row["p_adjusted"]) == pytest.approx(
        (-1.25, -2.66, 0.16, 0.72), abs=6e-3)  # fmt: skip


def test_holm_over_the_four_comparisons_that_share_the_optimistic_arm():
    """The sensitivity analysis the surgery sample declared: the four confirmatory comparisons
    made against the same 32 optimistic-Adam runs (seeds 14000-14031), in three reports, under
    one Holm, from each report's unadjusted p-values: the three *worse* stand, Extra-Adam's
    *equivalent* at equal steps does not (the README's figures)."""
    import pandas as pd

    from bench.config import load_sweep

    names = [f"unrolled-ring-25k-cpu-{s}" for s in
             ("optimistic-ortho-d", "extra-vs-optimistic", "surgery-vs-optimistic")]  # fmt: skip
    control = {s.run_id for s in load_sweep(names[-1], device="cpu").specs
               if s.label == "optimistic-adam"}  # fmt: skip
    rows = []
    for name in names:
        runs = pd.read_csv(RESULTS / name / "report" / "runs.csv")
        assert set(runs.loc[runs["label"] == "optimistic-adam", "run_id"]) == control
        c = pd.read_csv(RESULTS / name / "report" / "comparisons.csv")
        rows.append(c[c["family"] == "confirmatory"])
    four = pd.concat(rows, ignore_index=True)
    assert len(four) == 4 and set(four["base"]) == {"optimistic-adam"}
    key = list(zip(four["projected"], four["kind"]))
    difference = _holm(dict(zip(key, four["p_value"])))
    equivalence = _holm(dict(zip(key, four["p_equivalence"])))
    assert difference[("adam+surgery", "declared")] < 0.001
    assert difference[("optimistic-adam+ortho(d)", "ortho")] == pytest.approx(0.0038, abs=1e-4)
    assert difference[("extra-adam", "equal-evals")] == pytest.approx(0.0046, abs=1e-4)
    assert equivalence[("extra-adam", "declared")] == pytest.approx(0.063, abs=5e-4)
    assert difference[("extra-adam", "declared")] > 0.05
    # each family's own verdict, as committed: the sensitivity changes only Extra-Adam's
    assert dict(zip(key, four["verdict"])) == {
        ("optimistic-adam+ortho(d)", "ortho"): "worse", ("extra-adam", "declared"): "equivalent",
        ("extra-adam", "equal-evals"): "worse", ("adam+surgery", "declared"): "worse"}  # fmt: skip


def test_the_d_only_against_surgery_verdicts_follow_from_its_committed_runs():
    """The README's figures for unrolled-ring-25k-cpu-ortho-d-vs-surgery (32 pairs), recomputed
    with scipy from the committed runs.csv (seed-matched pairs, ⊥Grad on D − surgery, paired t;
    Holm over the three secondary metrics), the report's own verdicts, the collapses, the curve,
    the step costs, and each arm's agreement with its earlier flushed sample."""
    import pandas as pd
    from scipy import stats

    name, arm, base = "unrolled-ring-25k-cpu-ortho-d-vs-surgery", "adam+ortho(d)", "adam+surgery"
    wide, modes, secondary, holm, table, verdicts = _committed_sample(
        name, range(15000, 15032), arm, base)  # fmt: skip
    assert (*modes[:4], modes[4]) == pytest.approx((1.9375, 0.510, 3.365, 0.0094, 32), abs=1e-3)
    ortho, surgery = wide["final_modes"][arm], wide["final_modes"][base]
    d = ortho - surgery
    assert d.std() == pytest.approx(3.959, abs=1e-3)  # wider than the 3.3 the file assumed
    assert ((d > 0).sum(), (d < 0).sum(), (d == 0).sum()) == (19, 8, 5)
    assert stats.wilcoxon(d[d != 0]).pvalue == pytest.approx(0.015, abs=1e-3)
    assert (ortho.mean(), surgery.mean()) == pytest.approx((6.0625, 4.125), abs=1e-4)
    assert ((ortho == 8).sum(), (surgery == 8).sum()) == (14, 7)
    assert ((ortho <= 2).sum(), (surgery <= 2).sum()) == (5, 14)
    assert ((ortho == 0).sum(), (surgery == 0).sum()) == (2, 4)
    hq, fd = wide["final_high_quality"], wide["final_fd"]
    assert (hq[arm].mean(), hq[base].mean()) == pytest.approx((0.014, 0.025), abs=6e-4)
    assert [np.exp(np.log(fd[k]).mean()) for k in (arm, base)] == pytest.approx(
        [0.013, 0.042], abs=6e-4)  # fmt: skip
    assert secondary["high_quality"][:3] == pytest.approx((-0.011, -0.025, 0.004), abs=6e-4)
    assert np.exp(secondary["fd"][:3]) == pytest.approx((0.30, 0.10, 0.93), abs=6e-3)
    assert (*secondary["reverse_kl"][:3], secondary["reverse_kl"][4]) == pytest.approx(
        (-0.360, -0.706, -0.014, 27), abs=1e-3)  # fmt: skip
    assert [holm[k] for k in ("fd", "reverse_kl", "high_quality")] == pytest.approx(
        [0.113, 0.113, 0.136], abs=1e-3)  # fmt: skip
    assert set(table["kind"]) == {"declared"} and set(table["projected"]) == {arm}
    assert [verdicts[k] for k in ("modes", "fd", "high_quality", "reverse_kl")] == [
        "better", "undecided", "equivalent", "undecided"]  # fmt: skip
    explore = table.set_index("statistic")
    assert explore.loc["tail_d", "verdict"] == "worse"
    tail = explore.loc["tail_d", ["estimate", "estimate_ci_lo", "estimate_ci_hi"]]
    assert np.exp(tail.astype(float)).tolist() == pytest.approx([1.44, 1.12, 1.85], abs=6e-3)
    assert all(explore.loc[k, "verdict"] == "undecided" for k in
               ("growth_g", "growth_d", "tail_g", "reached_target", "grad_evals_to_target"))
    # both reach all 8 modes in every run; surgery loses them more often, and late
    reached = wide["steps_to_target"]
    assert (reached[arm].notna().sum(), reached[base].notna().sum()) == (32, 32)
    assert (reached[arm].median(), reached[base].median()) == (6250, 3750)
    assert [((ortho if k == arm else surgery) < 8).sum() for k in (arm, base)] == [18, 25]
    curve = pd.read_csv(RESULTS / name / "report" / "paired_curves.csv").set_index("step")
    up_to = curve.loc[1250:21250]
    assert (up_to["estimate_ci_lo"] < 0).all() and (up_to["estimate_ci_hi"] > 0).all()
    assert curve.loc[22500, ["estimate", "estimate_ci_lo"]].tolist() == pytest.approx(
        [1.906, 0.853], abs=1e-3)  # fmt: skip
    assert curve.loc[23750, "estimate_ci_lo"] < 0 < curve.loc[25000, "estimate_ci_lo"]
    # the cost: one gradient evaluation of each player a step
    per_step = wide["grad_evals"] / wide["steps_completed"]
    assert set(per_step[arm]) == set(per_step[base]) == {2.0}
    alone, member = wide["time_per_step_alone"].median(), wide["time_per_step"].median()
    assert (alone[arm] * 1e3, alone[base] * 1e3) == pytest.approx((9.98, 9.12), abs=0.005)
    assert (member[arm] * 1e3, member[base] * 1e3) == pytest.approx((7.82, 8.33), abs=0.005)
    # bench agree with each arm's earlier flushed sample: no difference detected
    row = _agrees_with(name, "unrolled-ring-25k-cpu-ortho-d", arm)
    assert (row["difference"], row["ci_lo"], row["ci_hi"]) == pytest.approx(
        (-0.208, -1.26, 0.844), abs=5e-3)  # fmt: skip
    row = _agrees_with(name, "unrolled-ring-25k-cpu-surgery-vs-optimistic", base)
    assert (row["difference"], row["ci_lo"], row["ci_hi"]) == pytest.approx(
        (-0.844, -2.378, 0.691), abs=1e-3)  # fmt: skip
