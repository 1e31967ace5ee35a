"""``python -m bench forest``: one comparison across studies, as each report decided it."""

from __future__ import annotations

import math
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from patience import patience
from PIL import Image

from bench.cli import main
from bench.errors import BenchError
from bench.report import across

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
COLUMNS = ["workload", "family", "kind", "base", "projected", "statistic", "higher_is_better",
           "n_pairs", "scale", "estimate", "estimate_ci_lo", "estimate_ci_hi", "delta",
           "p_value", "p_adjusted", "p_equivalence_adjusted", "verdict", "design"]  # fmt: skip


def _report(path: Path, rows: list[tuple]) -> Path:
    """A report directory whose comparisons.csv holds ``rows`` (COLUMNS' order)."""
    path.mkdir(parents=True)
    pd.DataFrame(rows, columns=COLUMNS).to_csv(path / "comparisons.csv", index=False)
    return path


def _row(workload, family, arm, statistic, est, lo, hi, verdict="undecided", p=0.5,
         scale="difference", delta=0.5, higher=True, n=10):  # fmt: skip
    return (workload, family, "baseline", "adam", arm, statistic, higher, n, scale, est, lo, hi,
            delta, p, min(1.0, 2 * p) if p == p else p, 0.9, verdict, "fixed")  # fmt: skip


@pytest.fixture
def two(tmp_path) -> tuple[Path, Path]:
    a = _report(tmp_path / "results" / "short" / "report", [
        _row("ring", "confirmatory", "adam+ortho", "modes", 1.0, 0.5, 1.5, "better", 0.001),
        _row("ring", "confirmatory", "extra-adam", "modes", 2.0, 1.0, 3.0, "better", 0.002),
        _row("ring", "secondary", "adam+ortho", "fd", -0.2, -0.4, 0.0, scale="log ratio",
             delta=math.log(1.1), higher=False),
        _row("digits", "confirmatory", "adam+ortho", "digits_fid", 0.7, 0.5, 0.9, "worse",
             0.01, scale="log ratio", delta=math.log(1.1), higher=False),
        _row("ring", "exploratory", "adam+ortho", "growth_g", 0.1, 0.0, 0.2),
        _row("digits", "exploratory", "adam+ortho", "growth_g", 0.1, 0.0, 0.2),
        _row("ring", "exploratory", "adam+ortho", "vanishing_g", 0.0, 0.0, 0.0, "not observed",
             p=float("nan")),
    ])  # fmt: skip
    b = _report(tmp_path / "results" / "long" / "report", [
        _row("ring", "confirmatory", "adam+ortho", "modes", -0.25, -0.5, 0.0, "equivalent", 0.3,
             n=64),
    ])  # fmt: skip
    return a, b


def test_rows_are_the_reports_own_with_their_family_size(two):
    a, b = two
    t = across.rows([str(a), str(b)], arms=["adam+ortho"], statistic="modes")
    assert list(t["study"]) == ["short", "long"]  # results/NAME/report is labelled NAME
    assert list(t["estimate"]) == [1.0, -0.25]
    assert list(t["n_pairs"]) == [10, 64]
    assert list(t["verdict"]) == ["better", "equivalent"]
    assert list(t["m"]) == [2, 1]  # the ring's confirmatory family in each report
    growth = across.rows([str(a)], statistic="growth_g")
    # exploratory is one family for the whole report; the untested "not observed" row not counted
    assert list(growth["m"]) == [2, 2]
    assert list(growth["workload"]) == ["ring", "digits"]
    untested = across.summary(across.rows([str(a)], statistic="vanishing_g"))
    assert untested.endswith("n = 10; not observed (exploratory, BH over 2, untested)")


def test_default_is_each_workloads_primary_and_arms_keep_their_order(two):
    a, _ = two
    t = across.rows([f"first={a}"])
    assert set(t["family"]) == {"confirmatory"}
    assert list(t["statistic"]) == ["modes", "modes", "digits_fid"]
    assert list(t["study"]) == ["first"] * 3  # LABEL=PATH
    ordered = across.rows([str(a)], arms=["extra-adam", "adam+ortho"], statistic="modes")
    assert list(ordered["projected"]) == ["extra-adam", "adam+ortho"]


def test_axis_units(two):
    a, b = two
    same = across._units(across.rows([str(a), str(b)], arms=["adam+ortho"], statistic="modes"))
    assert same[1] == "difference" and same[2] == 0.5
    assert list(same[0]["x"]) == [1.0, -0.25]
    ratio = across._units(across.rows([str(a)], statistic="fd"))
    assert ratio[1] == "ratio"
    assert ratio[0]["x"].iloc[0] == pytest.approx(math.exp(-0.2))
    assert ratio[2] == pytest.approx(math.log(1.1))
    mixed, axis, delta = across._units(across.rows([str(a)]))
    assert axis == "units of δ" and delta == 1.0
    # right is better for the arm: a lower-is-better log ratio of 0.7 (worse) is drawn left
    digits = mixed[mixed["workload"] == "digits"].iloc[0]
    assert digits["x"] == pytest.approx(-0.7 / math.log(1.1))
    assert digits["lo"] == pytest.approx(-0.9 / math.log(1.1))
    assert digits["hi"] == pytest.approx(-0.5 / math.log(1.1))
    assert mixed["x"].iloc[0] == pytest.approx(1.0 / 0.5)


def test_a_comparison_the_report_lacks_is_named(two):
    a, _ = two
    with pytest.raises(BenchError, match="no comparison of muon against 'adam' on 'modes'; it "
                       "compares adam\\+ortho, extra-adam with 'adam'"):  # fmt: skip
        across.rows([str(a)], arms=["muon"], statistic="modes")
    with pytest.raises(BenchError, match="no comparison of any arm against 'sgd' on the primary"):
        across.rows([str(a)], base="sgd")


def test_same_label_twice_is_refused(two):
    a, _ = two
    with pytest.raises(BenchError, match="labelled 'short'"):
        across.rows([str(a), f"short={a}"])


def test_cli_writes_the_figure_and_table(two, tmp_path, capsys):
    a, b = two
    out, csv = tmp_path / "f.png", tmp_path / "f.csv"
    code = main(["forest", str(a), str(b), "--arm", "adam+ortho", "--statistic", "modes",
                 "--out", str(out), "--csv", str(csv)])  # fmt: skip
    stdout = capsys.readouterr().out
    assert code == 0
    assert "short: adam+ortho vs adam, modes (ring): 1 [0.5, 1.5], n = 10; better" in stdout
    assert "equivalent (confirmatory, Holm over 1, adjusted p = 0.9 (equivalence))" in stdout
    with Image.open(out) as image:
        assert image.format == "PNG" and image.width > 400
    table = pd.read_csv(csv)
    assert list(table["estimate"]) == [1.0, -0.25] and "path" not in table


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--arm", "muon"], "no comparison of muon"),
        (["--statistic", "hq"], "no comparison of any arm against 'adam' on 'hq'"),
        (["--out", "f.svg"], "name a .png file"),
        (["--out", "nowhere/f.png"], "does not exist"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_nothing_written(two, tmp_path, capsys, extra,
                                                              message):  # fmt: skip
    a, _ = two
    out = ["--out", str(tmp_path / "f.png")]
    if extra[0] == "--out":
        out, extra = ["--out", str(tmp_path / extra[1])], []
    assert main(["forest", str(a), *out, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no figure, no temp


def test_python_m_bench_forest_exit_code(two, tmp_path):
    a, _ = two
    proc = subprocess.run([sys.executable, "-m", "bench", "forest", str(a), "--out",
                           str(tmp_path / "f.svg")], capture_output=True, text=True,
                          cwd=ROOT, timeout=patience(120))  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.startswith("bench forest: error: --out")


def _readme_forests() -> list[list[str]]:
    """The arguments of every `python -m bench forest` command in the README's code blocks."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands, start = [], text.find("\npython -m bench forest ")
    while start >= 0:
        block = text[start + 1 : text.index("```", start)].replace("\\\n", " ")
        commands.append(shlex.split(block)[4:])
        start = text.find("\npython -m bench forest ", start + 1)
    return commands


@pytest.mark.parametrize(
    "figure",
    ["horizon", "horizon-high-quality", "unrolled-25k-arms", "d-only", "d-only-high-quality",
     "d-only-comparators", "d-only-added", "unrolled-25k-declared"],
)
def test_the_readmes_figures_are_its_commands_on_the_committed_reports(figure):
    """The README's `bench forest` figures: their tables (docs/<figure>.csv, written beside
    them) hold each study's own rows, and the README's command gives them again."""
    (args,) = [a for a in _readme_forests() if f"docs/{figure}.png" in a]
    studies = [a for a in args if "=results/" in a]
    arms = [args[i + 1] for i, a in enumerate(args) if a == "--arm"]
    by = args[args.index("--by") + 1] if "--by" in args else "study"
    bases = [args[i + 1] for i, a in enumerate(args) if a == "--base"] or ["adam"]
    statistic = args[args.index("--statistic") + 1] if "--statistic" in args else None
    committed = pd.read_csv(ROOT / "docs" / f"{figure}.csv")
    committed["shares_runs_with"] = committed["shares_runs_with"].astype(object).fillna("")
    for r in committed.itertuples():
        path = next(a for a in studies if a.startswith(r.study + "=")).partition("=")[2]
        own = pd.read_csv(ROOT / path / "comparisons.csv")
        own = own[(own["family"] == r.family) & (own["projected"] == r.projected)
                  & (own["base"] == r.base) & (own["statistic"] == r.statistic)
                  & (own["kind"] == r.kind)]  # fmt: skip
        assert r.base in bases
        assert r.family == ("confirmatory" if statistic is None else r.family)
        assert len(own) == 1
        assert np.isclose(own["estimate"].iloc[0], r.estimate)
        assert (own["n_pairs"].iloc[0], own["verdict"].iloc[0]) == (r.n_pairs, r.verdict)
    absolute = [f"{label}={ROOT / path}" for label, _, path in (a.partition("=") for a in studies)]
    equal_cost = "--equal-cost" in args
    fresh = across.rows(absolute, base=bases, arms=arms or None, statistic=statistic, by=by,
                        equal_cost=equal_cost)  # fmt: skip
    fresh = fresh.drop(columns="path")
    pd.testing.assert_frame_equal(fresh, committed, check_dtype=False)
    # a row for every comparison of a named arm with a named base that its study's report made
    # on the statistic (none dropped), and every study has one
    made = 0
    for _, _, path in (a.partition("=") for a in studies):
        own = pd.read_csv(ROOT / path / "comparisons.csv")
        on = own["family"] == "confirmatory" if statistic is None else own["statistic"] == statistic
        own = own[on & own["base"].isin(bases)]
        if equal_cost:  # a pair made at equal gradient evaluations is drawn at them only
            pair = own[["workload", "projected", "base", "statistic"]].apply(tuple, axis=1)
            own = own[(own["kind"] == "equal-evals") | ~pair.isin(
                set(pair[own["kind"] == "equal-evals"]))]  # fmt: skip
        made += own["projected"].isin(arms).sum() if arms else len(own)
    assert len(committed) == made
    assert sorted(set(committed["study"])) == sorted(a.partition("=")[0] for a in studies)


def test_rows_by_arm_put_each_arms_studies_together(two):
    a, b = two
    t = across.rows([str(a), str(b)], statistic="modes", by="arm")
    assert list(zip(t["projected"], t["study"])) == [
        ("adam+ortho", "short"), ("adam+ortho", "long"), ("extra-adam", "short")]
    with pytest.raises(BenchError, match="grouped by 'study' or 'arm'"):
        across.rows([str(a)], by="workload")


def _against(row: tuple, base: str) -> tuple:
    """``row`` (COLUMNS' order) as a comparison its sweep declared against ``base``."""
    kind, old = COLUMNS.index("kind"), COLUMNS.index("base")
    return tuple("declared" if i == kind else base if i == old else v for i, v in enumerate(row))


def test_several_bases_set_one_arm_against_each_studys_comparator(two, tmp_path, capsys):
    """``--base`` repeated: one arm against the comparator each study made (Adam in one sample,
    optimistic Adam and ⊥Grad on both players in others), each row as its report decided it."""
    a, _ = two
    c = _report(tmp_path / "results" / "declared" / "report", [
        _against(_row("ring", "confirmatory", "adam+ortho", "modes", -1.5, -2.0, -1.0, "worse",
                      0.001, n=48), "optimistic-adam"),
        _against(_row("ring", "confirmatory", "adam+ortho", "modes", 0.25, -0.5, 1.0, n=48),
                 "lookahead(adam)"),
        _row("ring", "confirmatory", "extra-adam", "modes", 3.0, 2.0, 4.0, "better", 0.001),
    ])  # fmt: skip
    t = across.rows([str(a), str(c)], base=["lookahead(adam)", "adam", "optimistic-adam"],
                    arms=["adam+ortho"], statistic="modes")  # fmt: skip
    assert list(zip(t["study"], t["base"], t["estimate"])) == [
        ("short", "adam", 1.0),
        ("declared", "lookahead(adam)", 0.25),  # a study's rows in the bases' order
        ("declared", "optimistic-adam", -1.5),
    ]
    assert list(t["n_pairs"]) == [10, 48, 48] and list(t["verdict"]) == [
        "better", "undecided", "worse"]  # fmt: skip
    # one base is the old call, row for row
    one = across.rows([str(a), str(c)], base="adam", arms=["adam+ortho", "extra-adam"],
                      statistic="modes")
    assert list(zip(one["study"], one["projected"])) == [
        ("short", "adam+ortho"), ("short", "extra-adam"), ("declared", "extra-adam")]
    with pytest.raises(BenchError, match="no comparison of adam\\+ortho against 'sgd' or "
                       "'muon' on the primary metric; it compares nothing with 'sgd' or 'muon'"):
        across.rows([str(c)], base=["sgd", "muon"], arms=["adam+ortho"])
    out = tmp_path / "f.png"
    args = ["forest", str(a), str(c), "--arm", "adam+ortho", "--base", "adam", "--base",
            "optimistic-adam", "--statistic", "modes", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    stdout = capsys.readouterr().out
    assert "declared: adam+ortho vs optimistic-adam, modes (ring): -1.5 [-2, -1], n = 48; worse" \
        in stdout
    assert "lookahead" not in stdout  # a base not asked for is not shown
    with Image.open(out) as image:
        assert image.format == "PNG"


def _costed(path: Path, rows: list[tuple], per_step: dict[str, int]) -> Path:
    """:func:`_report` with a summary.csv: each arm at ``per_step`` gradient evaluations a step."""
    _report(path, rows)
    pd.DataFrame([("ring", arm, evals) for arm, evals in per_step.items()],
                 columns=["workload", "optimizer", "grad_evals_per_step"]).to_csv(
        path / "summary.csv", index=False)  # fmt: skip
    return path


def _equal_evals(row: tuple) -> tuple:
    """``row`` as its comparison at equal gradient evaluations."""
    kind = COLUMNS.index("kind")
    return tuple("equal-evals" if i == kind else v for i, v in enumerate(row))


@pytest.fixture
def costed(tmp_path) -> Path:
    """A study of three arms against Adam: ⊥Grad (Adam's cost), Extra-Adam (twice it) at equal
    steps and at equal gradient evaluations, and Extra-SGD (twice it) at equal steps only."""
    extra = _row("ring", "confirmatory", "extra-adam", "modes", 1.0, 0.5, 1.5, "better", 0.01)
    return _costed(tmp_path / "results" / "cost" / "report", [
        _row("ring", "confirmatory", "adam+ortho", "modes", 0.25, -0.5, 1.0),
        extra,
        _equal_evals(_row("ring", "confirmatory", "extra-adam", "modes", -0.75, -1.0, -0.5,
                          "worse", 0.01)),
        _row("ring", "confirmatory", "extra-sgd", "modes", 2.0, 1.0, 3.0, "better", 0.01),
    ], {"adam": 2, "adam+ortho": 2, "extra-adam": 4, "extra-sgd": 4})  # fmt: skip


def test_equal_cost_keeps_each_pair_at_equal_gradient_evaluations(costed):
    """``--equal-cost``: a pair the study compared at equal gradient evaluations shows that row
    only; a pair of arms of one cost a step shows its row at equal steps (which is equal cost)."""
    arms = ["adam+ortho", "extra-adam"]
    both = across.rows([str(costed)], arms=arms)
    assert list(zip(both["projected"], both["kind"], both["estimate"])) == [
        ("adam+ortho", "baseline", 0.25), ("extra-adam", "baseline", 1.0),
        ("extra-adam", "equal-evals", -0.75)]  # fmt: skip
    cost = across.rows([str(costed)], arms=arms, equal_cost=True)
    assert list(zip(cost["projected"], cost["kind"], cost["estimate"], cost["verdict"])) == [
        ("adam+ortho", "baseline", 0.25, "undecided"),
        ("extra-adam", "equal-evals", -0.75, "worse")]  # fmt: skip
    assert list(cost["m"]) == [4, 4]  # the family is the report's, whatever is shown
    assert "extra-adam vs adam at equal gradient evaluations" in across.summary(cost)
    # drawn, the equal-cost row names its budget on a second line, and rows are taller for it
    heights = []
    for i, table in enumerate((both.iloc[:2], cost)):
        across.draw(table, costed.parent / f"{i}.png")
        heights.append(Image.open(costed.parent / f"{i}.png").size[1])
    assert heights[1] > heights[0] * 1.05  # 0.55 inch a row, not 0.42


def test_equal_cost_refuses_a_pair_of_unequal_cost_only_at_equal_steps(costed, tmp_path, capsys):
    with pytest.raises(BenchError, match="extra-sgd and adam \\(ring\\) spend 4 and 2 gradient "
                       "evaluations a step and the study compared them only at equal steps"):
        across.rows([str(costed)], equal_cost=True)
    out = tmp_path / "f.png"
    assert main(["forest", str(costed), "--out", str(out), "--equal-cost"]) == 2
    err = capsys.readouterr().err
    assert "leave the pair out" in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["results"]
    # without the flag every row is drawn, the unequal pair at equal steps as declared
    assert main(["forest", str(costed), "--out", str(out)]) == 0 and out.is_file()


def test_equal_cost_needs_the_summary_table(two):
    a, _ = two
    with pytest.raises(BenchError, match=r"has no summary\.csv, and --equal-cost reads"):
        across.rows([str(a)], equal_cost=True)
    # a study that made no row of the arms is refused as without the flag
    with pytest.raises(BenchError, match="no comparison of muon"):
        across.rows([str(a)], arms=["muon"], equal_cost=True)


def _with_runs(path: Path, runs: dict[str, list[str]]) -> Path:
    """Give the report at ``path`` a runs.csv: arm label -> its run ids (workload "ring")."""
    rows = [("ring", label, run_id, 2 * 100, 100) for label, ids in runs.items() for run_id in ids]
    pd.DataFrame(rows, columns=["workload", "label", "run_id", "grad_evals", "steps_completed"]
                 ).to_csv(path / "runs.csv", index=False)  # fmt: skip
    return path


def test_rows_of_studies_that_share_runs_are_marked(tmp_path, capsys):
    """A sweep that reuses another's finished runs makes rows that are not independent samples:
    each row names the other studies holding any of its runs (its arm's or its comparator's, by
    run id), the figure marks them with one letter a linked set, the summary says so; rows of
    one study sharing its Adam arm are not marked (one family), and a study without a runs table
    is "unknown"."""
    row = _row("ring", "confirmatory", "adam+ortho", "modes", 1.0, 0.5, 1.5, "better", 0.001)
    extra = _row("ring", "confirmatory", "extra-adam", "modes", 2.0, 1.0, 3.0, "better", 0.002)
    first = _with_runs(_report(tmp_path / "results" / "first" / "report", [row, extra]),
                       {"adam": ["a1", "a2"], "adam+ortho": ["o1", "o2"], "extra-adam": ["e1"]})
    reuse = _with_runs(_report(tmp_path / "results" / "reuse" / "report", [row]),
                       {"adam": ["a1", "a2"], "adam+ortho": ["o3", "o4"]})  # Adam's runs again
    fresh = _with_runs(_report(tmp_path / "results" / "fresh" / "report", [row]),
                       {"adam": ["a5", "a6"], "adam+ortho": ["o5", "o6"],
                        "muon": ["e1"]})  # first's Extra-Adam run, in no row here: not counted
    bare = _report(tmp_path / "results" / "bare" / "report", [row])  # no runs.csv
    paths = [str(p) for p in (first, reuse, fresh, bare)]
    t = across.rows(paths, statistic="modes")
    assert list(zip(t["study"], t["projected"], t["shares_runs_with"])) == [
        ("first", "adam+ortho", "reuse"), ("first", "extra-adam", "reuse"),
        ("reuse", "adam+ortho", "first"), ("fresh", "adam+ortho", ""),
        ("bare", "adam+ortho", "unknown")]  # fmt: skip
    assert across._share_groups(t) == {"first": "A", "reuse": "A"}
    text = across.summary(t).splitlines()
    assert text[2].endswith("; shares runs with first") and "shares" not in text[3]
    out = tmp_path / "f.png"
    assert main(["forest", *paths, "--statistic", "modes", "--out", str(out), "--csv",
                 str(tmp_path / "f.csv")]) == 0  # fmt: skip
    back = pd.read_csv(tmp_path / "f.csv", keep_default_na=False)
    assert list(back["shares_runs_with"]) == list(t["shares_runs_with"])
    assert "shares runs with reuse" in capsys.readouterr().out
    # three studies linked through one: one letter
    third = _with_runs(_report(tmp_path / "results" / "third" / "report", [row]),
                       {"adam": ["a9"], "adam+ortho": ["o3"]})  # reuse's ⊥Grad run
    linked = across.rows([str(first), str(reuse), str(third), str(fresh)], statistic="modes")
    assert across._share_groups(linked) == {"first": "A", "reuse": "A", "third": "A"}


def test_the_declared_figure_marks_the_three_samples_with_one_control():
    """docs/unrolled-25k-declared.csv: the three samples of seeds 14000-14031 hold the same 32
    optimistic-Adam runs, and only they are marked (seeds 15000-15031's two arms are new)."""
    table = pd.read_csv(ROOT / "docs" / "unrolled-25k-declared.csv", keep_default_na=False)
    marked = table[table["shares_runs_with"] != ""]
    assert list(marked["study"]) == ["seeds 14000-14031", "seeds 14000-14031, Extra-Adam",
                                     "seeds 14000-14031, surgery"]  # fmt: skip
    assert set(marked["base"]) == {"optimistic-adam"} and len(table) == 10
    assert marked["shares_runs_with"].iloc[0] == (
        "seeds 14000-14031, Extra-Adam; seeds 14000-14031, surgery")
