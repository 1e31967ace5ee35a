"""The report end to end, on a tiny real sweep made once per session.

The sweep: bilinear (with a learning rate at which SGD diverges), dirac and mog-ring, each with
Adam, Adam+⊥Grad and a third optimizer, two learning rates, three seeds, plus one spec in
sweep.json that never ran. Numbers in the report are checked against an independent pandas
recomputation from the stored runs.
"""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

import bench
import ogan
from bench import runner, store
from bench.errors import BenchError
from bench.report import build_report, verdicts
from bench.report.document.formatting import mean_pm
from bench.report.stability import compare_verdicts
from bench.spec import RunSpec, freeze
from bench.store import atomic_write_json, environment, write_run

SEEDS = (0, 1, 2)
REPORT_SEEDS = (1, 2)  # the learning rate is selected on seed 0
ADAM = {"name": "adam", "betas": [0.5, 0.9]}
OPTIMIZERS = {
    "adam": ADAM,
    "adam+ortho": {**ADAM, "ortho": "weights"},
    "adam+surgery": {**ADAM, "surgery": True},
    "sgd": {"name": "sgd"},
}
WORKLOADS = {
    # name: (options, steps, eval_every, optimizers, lrs by optimizer)
    "bilinear": ({"dim": 4}, 40, 10, ("adam", "adam+ortho", "sgd"), {"sgd": (0.05, 10.0)}),
    "dirac": ({}, 30, 10, ("adam", "adam+ortho", "adam+surgery"), {}),
    "mog-ring": (
        {"hidden": 16, "batch_size": 32},
        20,
        10,
        ("adam", "adam+ortho", "adam+surgery"),
        {},
    ),
}
DEFAULT_LRS = (0.01, 0.1)


def _spec(sweep: str, workload: str, optimizer: str, lr: float, seed: int) -> RunSpec:
    options, steps, eval_every, _, _ = WORKLOADS[workload]
    return RunSpec(
        sweep=sweep,
        workload=workload,
        workload_options=freeze(options),
        optimizer=freeze({**OPTIMIZERS[optimizer], "lr": lr}),
        label=optimizer,
        seed=seed,
        steps=steps,
        eval_every=eval_every,
        device="cpu",
    )


def _specs(sweep: str) -> list[RunSpec]:
    return [
        _spec(sweep, wl, optimizer, lr, seed)
        for wl, (_, _, _, optimizers, lrs) in WORKLOADS.items()
        for optimizer in optimizers
        for lr in lrs.get(optimizer, DEFAULT_LRS)
        for seed in SEEDS
    ]


@pytest.fixture(scope="session")
def sweep_dir(tmp_path_factory) -> Path:
    """A finished tiny sweep, plus one spec in sweep.json that never ran."""
    root = tmp_path_factory.mktemp("results") / "tiny"
    specs = _specs("tiny")
    never_ran = _spec("tiny", "dirac", "adam", 0.3, 0)
    atomic_write_json(root / "sweep.json", {"specs": [s.to_dict() for s in [*specs, never_ran]]})
    env = environment("cpu")
    for spec in specs:
        write_run(root, spec, ogan.train(**spec.train_kwargs(), threads=1), env)
    return root


def _count_reads(mp: pytest.MonkeyPatch, reads: Counter) -> None:
    """Count every open of a file by the readers the store uses: text (JSON), parquet bodies
    and parquet footers."""
    import pyarrow.parquet as pq

    for owner, name in ((Path, "read_text"), (pd, "read_parquet"), (pq, "read_metadata")):
        original = getattr(owner, name)

        def counted(path, *args, _original=original, **kwargs):
            reads[Path(path)] += 1
            return _original(path, *args, **kwargs)

        mp.setattr(owner, name, counted)


@pytest.fixture(scope="session")
def built(sweep_dir) -> tuple[Path, Counter]:
    """The report of the tiny sweep, and how often each file was opened to build it."""
    reads: Counter = Counter()
    with pytest.MonkeyPatch.context() as mp:
        _count_reads(mp, reads)
        index = build_report(sweep_dir)
    return index, reads


@pytest.fixture(scope="session")
def report(built) -> Path:
    return built[0]


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if "id" in a:
            self.ids.add(a["id"])
        if "href" in a:
            self.hrefs.append(a["href"])
        if "src" in a:
            self.srcs.append(a["src"])


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


# -- files and references -----------------------------------------------------------------------


def test_report_writes_the_page_the_markdown_every_figure_and_the_csv_tables(report):
    out = report.parent
    assert report == out / "index.html" and out.name == "report"
    assert (out / "report.md").is_file()
    for name in ("summary", "paired", "paired_curves", "ranking", "best_lr", "grad_norms",
                 "missing", "nonfinite"):  # fmt: skip
        assert (out / f"{name}.csv").is_file(), name
    runs = pd.read_csv(out / "runs.csv")  # runs × metrics, one row per finished run
    assert len(runs) == len(_specs("tiny")) and runs["run_id"].is_unique
    assert {"workload", "optimizer", "lr", "seed", "final", "nonfinite"} <= set(runs.columns)
    assert not any(c.startswith("metrics_") for c in runs.columns)
    kinds = ("curves", "final", "lr", "cost", "grad-norms", "removed", "forest", "paired-curves")
    expected = {"fig-performance-profiles.png", "fig-divergence.png"} | {
        f"fig-{wl}-{kind}.png" for wl in WORKLOADS for kind in kinds
    }
    assert {p.name for p in out.glob("*.png")} == expected
    for png in expected:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_is_self_contained_and_every_reference_resolves(report):
    page = _parse(report)
    assert len(page.srcs) == 2 + 8 * len(WORKLOADS)
    for src in page.srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"
    for href in page.hrefs:
        assert href.startswith("#"), f"external or file link {href}"
        assert href[1:] in page.ids, f"broken anchor {href}"
    assert not [t for t, a in page.tags if t in ("script", "link", "iframe")]
    text = report.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text


def test_markdown_figures_exist_next_to_it_and_anchors_resolve(report):
    md = (report.parent / "report.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(images) == 2 + 8 * len(WORKLOADS)  # with a forest plot and a paired-curves one
    for name in images:
        assert (report.parent / name).is_file(), name
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', md))
    for target in re.findall(r"\]\(#([^)]+)\)", md):
        assert target in anchors


# -- the store is read once -------------------------------------------------------------------


def _stored_files(sweep_dir: Path) -> list[Path]:
    return [sweep_dir / "sweep.json", *sorted((sweep_dir / "runs").iterdir())]


def test_a_report_opens_sweep_json_and_every_run_file_exactly_once(built, sweep_dir):
    _, reads = built
    files = _stored_files(sweep_dir)
    assert len(files) == 1 + 3 * len(_specs("tiny"))
    assert {f.name: reads[f] for f in files} == {f.name: 1 for f in files}


@pytest.mark.parametrize(
    "read",
    [
        bench.load,
        bench.load_runs,
        bench.load_traces,
        bench.load_records,
        lambda d: runner.summary_table(d, tuple(store.read_sweep(d)["specs"])),
    ],
    ids=["load", "load_runs", "load_traces", "load_records", "summary_table"],
)
def test_each_loader_opens_every_run_file_once(sweep_dir, monkeypatch, read):
    reads: Counter = Counter()
    _count_reads(monkeypatch, reads)
    read(sweep_dir)
    runs = [f for f in _stored_files(sweep_dir) if f.parent.name == "runs"]
    assert {f.name: reads[f] for f in runs} == {f.name: 1 for f in runs}


def test_a_run_file_that_does_not_read_back_is_left_out_of_every_table_and_named(
    tmp_path, sweep_dir
):
    part = tmp_path / "part"
    shutil.copytree(sweep_dir / "runs", part / "runs")
    broken = sorted((part / "runs").glob("*.trace.parquet"))[0]
    broken.write_bytes(b"garbage")
    run_id = broken.name.removesuffix(".trace.parquet")
    results = store.read_results(part)
    assert [(sweep, rid) for sweep, rid, _ in results.problems] == [("part", run_id)]
    ids = {r["run_id"] for r in results.records}
    assert len(ids) == len(_specs("tiny")) - 1 and run_id not in ids
    assert set(results.history["run_id"]) == set(results.traces["run_id"]) == ids
    assert set(results.runs["run_id"]) == ids
    with pytest.warns(UserWarning, match=f"left out 1 run.*{run_id}"):
        history = bench.load(part)
    assert run_id not in set(history["run_id"])


def test_a_missing_or_malformed_sweep_json_is_a_one_line_bench_error(tmp_path):
    with pytest.raises(BenchError, match=r"no sweep\.json in .*bench run writes it"):
        store.read_sweep(tmp_path)
    (tmp_path / "sweep.json").write_text('{"specs": [{"sweep": "x"}]}')
    with pytest.raises(BenchError, match=r"cannot read .*sweep\.json: KeyError") as err:
        build_report(tmp_path)
    assert "\n" not in str(err.value)


# -- numbers against an independent recomputation -----------------------------------------------


def _recompute(runs: pd.DataFrame, workload: str, optimizer: str, metric: str) -> dict:
    """Best lr on seed 0 (non-finite worst, then best, then smaller lr), reported on seeds 1, 2."""
    r = runs[(runs["workload"] == workload) & (runs["optimizer"] == optimizer)]
    sel = r[r["seed"] == 0].sort_values("lr")
    nonfinite = sel["diverged_at"].notna() | ~np.isfinite(sel[f"final_{metric}"])
    sign = -1 if ogan.workloads.get(workload).metrics[metric].higher_is_better else 1
    score = (sign * sel[f"final_{metric}"]).where(~nonfinite, np.inf)
    best_lr = float(sel.loc[score.idxmin(), "lr"]) if np.isfinite(score.min()) else None
    rep = r[(r["lr"] == best_lr) & r["seed"].isin([1, 2])]
    values = rep[f"final_{metric}"].to_numpy()
    return {
        "best_lr": best_lr,
        "mean": values.mean(),
        "half": 12.706204736174707 * values.std(ddof=1) / math.sqrt(2),  # t_{0.975, 1}
        "time_per_step_ms": 1e3 * r["time_per_step"].mean(),
        "by_seed": rep.set_index("seed")[f"final_{metric}"],
    }


@pytest.mark.parametrize(
    ("workload", "optimizer", "metric"),
    [
        ("mog-ring", "adam", "modes"),
        ("mog-ring", "adam+surgery", "modes"),
        ("dirac", "adam+ortho", "distance"),
        ("bilinear", "sgd", "distance"),
    ],
)
def test_summary_numbers_equal_a_pandas_recomputation(
    report, sweep_dir, workload, optimizer, metric
):
    runs = bench.load_runs(sweep_dir)
    want = _recompute(runs, workload, optimizer, metric)
    summary = pd.read_csv(report.parent / "summary.csv")
    row = summary[(summary["workload"] == workload) & (summary["optimizer"] == optimizer)].iloc[0]
    assert row["best_lr"] == want["best_lr"]
    metric_info = ogan.workloads.get(workload).metrics[metric]
    values = want["by_seed"].to_numpy()
    if (values == values[0]).all():  # no spread: no zero-width interval (intervals.py)
        assert row["final_mean"] == pytest.approx(values[0], rel=1e-12)
        assert math.isnan(row["final_ci_lo"]) and row["final_interval"] == "no spread: no interval"
        return
    if metric_info.log_scale:  # the geometric mean, and the t-interval of the logs mapped back
        logs = np.log(values)
        half = 12.706204736174707 * logs.std(ddof=1) / math.sqrt(2)
        center, lo, hi = np.exp([logs.mean(), logs.mean() - half, logs.mean() + half])
    else:  # the mean and the t-interval, cut to the metric's bounds
        center, lo, hi = want["mean"], want["mean"] - want["half"], want["mean"] + want["half"]
        lo = max(lo, metric_info.bounds[0])
        hi = hi if metric_info.bounds[1] is None else min(hi, metric_info.bounds[1])
    assert row["final_mean"] == pytest.approx(center, rel=1e-12)
    assert (row["final_ci_lo"], row["final_ci_hi"]) == pytest.approx((lo, hi), rel=1e-9)
    assert row["time_per_step_ms"] == pytest.approx(want["time_per_step_ms"], rel=1e-12)
    shown = mean_pm(row["final_mean"], row["final_ci_lo"], row["final_ci_hi"], int(row["n_finite"]))
    assert f"<td>{shown}</td>" in report.read_text(encoding="utf-8")


def test_paired_comparison_equals_the_seed_matched_difference(report, sweep_dir):
    runs = bench.load_runs(sweep_dir)
    base = _recompute(runs, "mog-ring", "adam", "modes")["by_seed"]
    ortho = _recompute(runs, "mog-ring", "adam+ortho", "modes")["by_seed"]
    diff = (ortho - base).dropna()
    paired = pd.read_csv(report.parent / "paired.csv")
    row = paired[(paired["workload"] == "mog-ring") & (paired["projected"] == "adam+ortho")].iloc[0]
    assert (row["kind"], row["base"], row["n_pairs"]) == ("ortho", "adam", 2)
    assert row["mean_diff"] == pytest.approx(diff.mean(), rel=1e-12)
    assert row["projected_better"] == int((diff > 0).sum())  # modes: higher is better
    assert "too small" in row["note"]
    # the two means are over the same pairs as the difference, in every row
    np.testing.assert_allclose(paired["projected_mean"] - paired["base_mean"], paired["mean_diff"],
                               rtol=1e-9, atol=1e-12)  # fmt: skip
    kinds = set(zip(paired["workload"], paired["kind"], paired["base"], paired["projected"]))
    assert kinds == {(wl, "ortho", "adam", "adam+ortho") for wl in WORKLOADS} | {
        ("dirac", "surgery", "adam", "adam+surgery"),
        ("mog-ring", "surgery", "adam", "adam+surgery"),
        ("bilinear", "baseline", "adam", "sgd"),  # every optimizer without a projection vs Adam
    }


def _history_by_seed(sweep_dir: Path, workload: str, optimizer: str, metric: str) -> pd.DataFrame:
    """Steps × report seeds of one optimizer's metric at its selected lr, from the run files."""
    runs = bench.load_runs(sweep_dir)
    lr = _recompute(runs, workload, optimizer, metric)["best_lr"]
    h = bench.load(sweep_dir)
    h = h[(h["workload"] == workload) & (h["optimizer"] == optimizer) & (h["lr"] == lr)]
    return h[h["seed"].isin(REPORT_SEEDS)].pivot(index="step", columns="seed", values=metric)


def test_the_paired_difference_during_training_is_recomputed_step_by_step(report, sweep_dir):
    curves = pd.read_csv(report.parent / "paired_curves.csv")
    paired = pd.read_csv(report.parent / "paired.csv")
    # every paired comparison, at every evaluation of its runs
    assert set(zip(curves["workload"], curves["kind"], curves["projected"])) == set(
        zip(paired["workload"], paired["kind"], paired["projected"])
    )
    for wl, metric, log in (("mog-ring", "modes", False), ("bilinear", "distance", True)):
        base = _history_by_seed(sweep_dir, wl, "adam", metric)
        variant = _history_by_seed(sweep_dir, wl, "adam+ortho", metric)
        c = curves[(curves["workload"] == wl) & (curves["projected"] == "adam+ortho")]
        _, _, eval_every, _, _ = WORKLOADS[wl]
        assert c["step"].tolist() == base.index.tolist() == variant.index.tolist()
        assert c["step"].diff().dropna().eq(eval_every).all()
        diff = np.log(variant / base) if log else variant - base
        assert c["scale"].eq("log ratio" if log else "difference").all()
        np.testing.assert_allclose(c["estimate"], diff.mean(axis=1), rtol=1e-9, atol=1e-12)
        assert (c["n_pairs"] == len(REPORT_SEEDS)).all()
        # the 95% t interval of each step's differences
        half = sps.t.ppf(0.975, len(REPORT_SEEDS) - 1) * diff.std(axis=1, ddof=1) / np.sqrt(2)
        spread = half > 0
        assert spread.sum() >= len(spread) // 2  # most steps have spread: the check bites
        mean = diff.mean(axis=1)[spread]
        for col, sign in (("estimate_ci_lo", -1), ("estimate_ci_hi", 1)):
            want = mean + sign * half[spread]
            np.testing.assert_allclose(c[col][spread.to_numpy()], want, rtol=1e-9)
        # its last step is the verdict's estimate and interval on the final value
        row = paired[(paired["workload"] == wl) & (paired["projected"] == "adam+ortho")].iloc[0]
        last = c.iloc[-1]
        for col in ("estimate", "estimate_ci_lo", "estimate_ci_hi", "n_pairs"):
            assert last[col] == pytest.approx(row[col], rel=1e-12, nan_ok=True), col


def test_the_paired_curves_are_shown_with_the_paired_comparisons_and_say_they_decide_nothing(
    report,
):
    md = report.parent.joinpath("report.md").read_text(encoding="utf-8")
    paired = md.index("## Paired comparisons")
    after = md.index("\n## ", paired + 1)
    for wl in WORKLOADS:
        figure = md.index(f"](fig-{wl}-paired-curves.png)")
        assert paired < figure < after  # in the paired section, and only there
        assert md.count(f"fig-{wl}-paired-curves.png") == 1
    assert "no verdict comes from them" in md[paired:after]


def test_a_baseline_is_compared_with_adam_seed_by_seed_at_its_selected_lr(report, sweep_dir):
    runs = bench.load_runs(sweep_dir)
    adam = _recompute(runs, "bilinear", "adam", "distance")["by_seed"]
    sgd = _recompute(runs, "bilinear", "sgd", "distance")["by_seed"]
    paired = pd.read_csv(report.parent / "paired.csv")
    row = paired[paired["kind"] == "baseline"].iloc[0]
    want = verdicts.paired_verdict(adam, sgd, higher_is_better=False, log_scale=True)
    assert (row["verdict"], row["n_pairs"], row["scale"]) == (want.verdict, want.n, want.scale)
    assert want.n == 2 and row["estimate"] == pytest.approx(want.estimate, rel=1e-12)
    claims = pd.read_csv(report.parent / "claims.csv")
    assert "baseline" not in set(claims["kind"])  # the claim is the projection's


def test_diverged_runs_are_counted_as_nonfinite_and_listed_not_hidden(report, sweep_dir):
    runs = bench.load_runs(sweep_dir)
    diverged = runs[runs["diverged_at"].notna()]
    assert len(diverged) == 3 and set(diverged["lr"]) == {10.0}  # bilinear sgd at lr 10
    nonfinite = pd.read_csv(report.parent / "nonfinite.csv")
    assert set(nonfinite["run_id"]) == set(diverged["run_id"])
    summary = pd.read_csv(report.parent / "summary.csv").set_index(["workload", "optimizer"])
    assert summary.loc[("bilinear", "sgd"), "divergence_rate_all"] == 0.5
    assert summary.loc[("bilinear", "sgd"), "best_lr"] == 0.05
    page = report.read_text(encoding="utf-8")
    assert "Non-finite: 3 run(s) diverged" in page
    for run_id in diverged["run_id"]:
        assert run_id in page


def test_missing_runs_from_sweep_json_are_named(report):
    missing = pd.read_csv(report.parent / "missing.csv")
    assert len(missing) == 1
    assert missing.iloc[0][["workload", "label", "lr", "seed"]].tolist() == [
        "dirac",
        "adam",
        0.3,
        0,
    ]
    assert missing.iloc[0]["reason"] == "not run yet (or interrupted)"  # it never failed
    page = report.read_text(encoding="utf-8")
    assert "Partial sweep: 1 of" in page
    assert missing.iloc[0]["run_id"] in page
    assert "not run yet (or interrupted)" in page


def test_report_states_the_seed_split_and_how_metrics_were_computed(report):
    page = report.read_text(encoding="utf-8")
    assert "lr selected on seed(s) 0; everything reported on seed(s) 1, 2" in page
    assert "eval_samples" in page  # mog-ring's metric_info
    assert "torch" in page and "git_commit" in page


def test_ranking_follows_the_summary(report):
    summary = pd.read_csv(report.parent / "summary.csv")
    ranking = pd.read_csv(report.parent / "ranking.csv").set_index("optimizer")
    for wl, g in summary.groupby("workload"):
        cls = ogan.workloads.get(wl)
        sign = -1 if cls.metrics[cls.primary_metric].higher_is_better else 1
        g = g.assign(score=sign * g["final_mean"]).sort_values(["nonfinite_rate_best", "score"])
        ranks = ranking.loc[g["optimizer"], wl].to_numpy()
        assert (np.diff(ranks) >= 0).all()  # ties share their average rank
        assert ranks[0] == (1.0 if g["score"].iloc[0] < g["score"].iloc[1] else 1.5)


def _copy_runs(sweep_dir: Path, dest: Path, specs: list[RunSpec]) -> None:
    (dest / "runs").mkdir(parents=True)
    for s in specs:
        for suffix in (".json", ".parquet", ".trace.parquet"):
            shutil.copy(sweep_dir / "runs" / f"{s.run_id}{suffix}", dest / "runs")


def _edit_summaries(sweep_dir: Path, edit) -> None:
    for path in (sweep_dir / "runs").glob("*.json"):
        record = json.loads(path.read_text(encoding="utf-8"))
        edit(record["summary"])
        path.write_text(json.dumps(record))


def test_metric_names_direction_and_target_come_from_each_runs_own_summary(tmp_path, sweep_dir):
    """Not from the workload class: a run's metric set can follow its options."""
    from bench.report import load_sweep

    part = tmp_path / "part"
    _copy_runs(sweep_dir, part, [s for s in _specs("tiny") if s.workload == "mog-ring"])

    def edit(summary: dict) -> None:
        summary["metrics"] = {"fd": {"description": "as recorded", "higher_is_better": True}}
        summary["target"] = {"metric": "fd", "value": 123.0}

    _edit_summaries(part, edit)
    info = load_sweep(part).workloads["mog-ring"]
    assert info.metrics == {"fd": ("as recorded", True)}
    assert (info.primary, info.target, info.target_text()) == ("fd", 123.0, "fd ≥ 123")


def test_runs_without_a_metric_table_get_their_final_metrics_and_a_note_on_direction(
    tmp_path, sweep_dir
):
    from bench.report import load_sweep

    part = tmp_path / "part"
    _copy_runs(sweep_dir, part, [s for s in _specs("tiny") if s.workload == "dirac"])
    _edit_summaries(part, lambda summary: summary.pop("metrics"))
    data = load_sweep(part)
    info = data.workloads["dirac"]
    assert info.metrics == {"distance": ("", False)} and info.primary == "distance"
    assert any("dirac: its runs record no metric table" in n for n in data.notes)


# -- degraded inputs ------------------------------------------------------------------------------


def test_missing_directory_is_a_one_line_bench_error(tmp_path):
    with pytest.raises(BenchError) as err:
        build_report(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(err.value) and "python -m bench run" in str(err.value)
    assert "\n" not in str(err.value)


def test_empty_directory_names_the_directory_and_what_is_missing(tmp_path):
    with pytest.raises(
        BenchError, match=r"no finished runs under .*; run python -m bench run first"
    ):
        build_report(tmp_path)


def test_sweep_without_finished_runs_says_what_sweep_json_asked_for(tmp_path, sweep_dir):
    shutil.copy(sweep_dir / "sweep.json", tmp_path / "sweep.json")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "0123456789abcdef.json").write_text("{not json")
    with pytest.raises(BenchError) as err:
        build_report(tmp_path)
    message = str(err.value)
    assert f"no finished runs under {tmp_path}" in message
    assert f"sweep.json lists {len(_specs('tiny')) + 1} runs, none finished" in message
    assert "1 run files do not read back" in message
    assert "\n" not in message


def test_partial_single_seed_sweep_renders_with_what_is_missing_named(tmp_path, sweep_dir):
    """One workload, seed 0 only: CIs read n/a (1 seed) and the rest of the sweep is listed."""
    part = tmp_path / "part"
    specs = [s for s in _specs("tiny") if s.workload == "dirac"]
    atomic_write_json(part / "sweep.json", {"specs": [s.to_dict() for s in specs]})
    _copy_runs(sweep_dir, part, [s for s in specs if s.seed == 0])
    index = build_report(part, out=tmp_path / "out")
    page = index.read_text(encoding="utf-8")
    assert index == tmp_path / "out" / "index.html"
    assert "no interval (1 seed)" in page
    assert "dirac: a single seed" in page
    missing = pd.read_csv(tmp_path / "out" / "missing.csv")
    assert len(missing) == len(specs) - len([s for s in specs if s.seed == 0])
    assert set(missing["seed"]) == {1, 2}
    assert "too few seed pairs to tell" in page or "1 pair" in page
    for src in _parse(index).srcs:
        assert src.startswith("data:image/png;base64,")


def test_report_of_a_results_root_finds_the_sweep_below_it(tmp_path, sweep_dir):
    root = tmp_path / "results"
    root.mkdir()
    (root / "tiny").symlink_to(sweep_dir, target_is_directory=True)
    from bench.report import load_sweep

    data = load_sweep(root)
    assert set(data.workloads) == set(WORKLOADS)
    assert data.expected == len(_specs("tiny")) + 1
    json.dumps(data.optimizer_config[("dirac", "adam+ortho")])  # resolved config is plain JSON
    assert data.optimizer_config[("dirac", "adam+ortho")]["ortho"] == "weights"


def test_a_sweep_of_other_sweeps_runs_is_named_by_its_sweep_json_and_says_where_they_ran(
    tmp_path, sweep_dir
):
    """A sweep can reuse finished runs of others (a run id does not hold the sweep's name):
    the report is titled by its own sweep.json name and says which sweeps ran them. Without a
    name in sweep.json (the tiny sweep's), the runs' sweeps title it, as before."""
    from bench.report import load_sweep

    union = tmp_path / "union"
    specs = [s for s in _specs("tiny") if s.workload == "dirac"]
    manifest = {"name": "union", "specs": [s.to_dict() for s in specs]}
    atomic_write_json(union / "sweep.json", manifest)
    _copy_runs(sweep_dir, union, specs)
    data = load_sweep(union)
    assert data.sweeps == ["union"] and set(data.runs["sweep"]) == {"tiny"}
    page = build_report(union, out=tmp_path / "out").read_text(encoding="utf-8")
    assert "<title>ogan report: union</title>" in page
    header = rf"Sweep\(s\) union under \S*union: {len(specs)} finished runs \(run in tiny\) on"
    assert re.search(header, page)
    assert load_sweep(sweep_dir).sweeps == ["tiny"]


def test_a_run_stored_under_two_sweeps_of_a_results_root_is_counted_once(tmp_path, sweep_dir):
    """A results root holding a sweep and another that reuses its runs (copies of their files)
    reports each run once, and says so; every loader counts alike."""
    from bench.report import load_sweep

    root = tmp_path / "results"
    root.mkdir()
    (root / "tiny").symlink_to(sweep_dir, target_is_directory=True)
    reused = [s for s in _specs("tiny") if s.workload == "dirac"]
    _copy_runs(sweep_dir, root / "union", reused)
    bodies = []  # parquet files read in full
    with pytest.MonkeyPatch.context() as mp:
        read_parquet = pd.read_parquet
        mp.setattr(pd, "read_parquet", lambda path, *a, **k: (bodies.append(Path(path)),
                                                             read_parquet(path, *a, **k))[1])
        data = load_sweep(root)
    # the copies' tables are not read a second time (their records and footers are checked)
    assert len(bodies) == 2 * len(_specs("tiny"))
    assert not [p for p in bodies if p.parent.parent.name == "union"]
    assert len(data.runs) == data.runs["run_id"].nunique() == len(_specs("tiny"))
    assert data.history.groupby("run_id").ngroups == len(_specs("tiny"))
    assert len(data.history) == len(load_sweep(sweep_dir).history)
    assert f"{len(reused)} run(s) stored in more than one sweep directory" in " ".join(data.notes)
    assert len(bench.load_runs(root)) == len(_specs("tiny"))


def test_the_tiny_report_is_titled_by_the_sweep_its_runs_ran_in(report):
    page = report.read_text(encoding="utf-8")
    assert "<title>ogan report: tiny</title>" in page
    assert "(run in " not in page


def test_one_label_covering_two_surgery_settings_becomes_two_paired_optimizers():
    """surgery set in the [[workload]] table: same label, different resolved optimizer configs."""
    from bench.report.data import _optimizers, _pairs, _workload_keys

    def record(run_id: str, surgery: bool) -> dict:
        options = {"surgery": True} if surgery else {}
        return {
            "run_id": run_id,
            "spec": {
                "workload": "mog-ring",
                "workload_options": options,
                "steps": 10,
                "eval_every": 5,
                "label": "adam",
            },
            "config": {"optimizer": {"name": "adam", "lr": 1e-3, "surgery": surgery}},
        }

    records = [record("a", False), record("b", True)]
    keys = _workload_keys(records)
    assert keys == {"a": "mog-ring", "b": "mog-ring"}
    names, _ = _optimizers(records, keys)
    assert names == {"a": "adam", "b": "adam+surgery"}
    pairs = _pairs(records, keys, names)
    assert pairs.to_dict("records") == [
        {"workload": "mog-ring", "kind": "surgery", "base": "adam", "projected": "adam+surgery"}
    ]


def test_a_workload_that_ignores_the_seed_is_flagged(report):
    # dirac starts from fixed (θ, ψ) and samples nothing random: every seed is the same run.
    assert "dirac: every seed gives the same final metric" in report.read_text(encoding="utf-8")
    assert "mog-ring: every seed gives" not in report.read_text(encoding="utf-8")


# -- verdicts -----------------------------------------------------------------------------------


def test_every_paired_row_carries_the_fixed_design_verdict_of_its_seed_matched_runs(
    report, sweep_dir
):
    from bench.report import verdicts

    runs = bench.load_runs(sweep_dir)
    base = _recompute(runs, "dirac", "adam", "distance")["by_seed"]
    ortho = _recompute(runs, "dirac", "adam+ortho", "distance")["by_seed"]
    margin = ogan.workloads.get("dirac").metrics["distance"].margin  # declared: 10%
    expected = verdicts.paired_verdict(
        base, ortho, higher_is_better=False, log_scale=True, margin=margin
    )
    paired = pd.read_csv(report.parent / "paired.csv")
    row = paired[(paired["workload"] == "dirac") & (paired["projected"] == "adam+ortho")].iloc[0]
    assert row["verdict_unadjusted"] == expected.verdict and row["design"] == "fixed"
    assert row["family"] == "confirmatory" and row["p_adjusted"] >= row["p_value"]
    assert row["scale"] == expected.scale == verdicts.LOG_RATIO  # dirac's distance: log scale
    assert row["delta"] == pytest.approx(math.log1p(0.1))
    assert row["estimate"] == pytest.approx(expected.estimate, rel=1e-12)
    assert row["estimate_ci_hi"] == pytest.approx(expected.ci_hi, rel=1e-12, nan_ok=True)
    assert set(paired["verdict"]) <= set(verdicts.VERDICTS)
    assert paired["delta_text"].str.contains(r"\((?:difference|log ratio)\)").all()


def test_the_findings_lead_with_a_forest_plot_and_a_verdict_row_per_comparison(report):
    md = (report.parent / "report.md").read_text(encoding="utf-8")
    findings = md.split("Findings at a glance")[-1].split("\n## ", 1)[0]  # after the contents
    comparisons = pd.read_csv(report.parent / "comparisons.csv")
    for wl in WORKLOADS:
        part = findings.split(f"**{wl}**", 1)[1]
        assert part.lstrip().startswith("(primary metric")
        assert f"![{wl}: every verdict at a glance](fig-{wl}-forest.png)" in part
        tested = comparisons[(comparisons["workload"] == wl) & comparisons["p_value"].notna()]
        table = part.split(f"**{wl}: verdicts**", 1)[1].split("\n\n", 2)[1]
        rows = table.splitlines()[2:]
        assert len(rows) == len(tested)
        assert len(table.splitlines()[0].split(" | ")) <= 8
        for line, r in zip(rows, tested.itertuples(), strict=True):
            assert line.startswith(f"| {r.family} | ") and f"**{r.verdict}**" in line
    assert (comparisons["family"].iloc[: (comparisons["family"] == "confirmatory").sum()]
            == "confirmatory").all()  # fmt: skip
    assert "TOST" in md and "Holm" in md and "Benjamini–Hochberg" in md


def test_the_claim_table_has_a_verdict_per_pair_statistic_and_player(report):
    claims = pd.read_csv(report.parent / "claims.csv")
    paired = pd.read_csv(report.parent / "paired.csv")
    per_pair = claims.groupby(["workload", "base", "projected"])["statistic"].apply(set)
    assert len(per_pair) == (paired["kind"] != "baseline").sum()  # the projection's claim only
    for stats in per_pair:
        assert {"growth_g", "growth_d", "tail_g", "tail_d", "vanishing_g", "exploding_d",
                "reached_target", "time_to_target", "grad_evals_to_target"} <= stats  # fmt: skip
    # dirac's ⊥Grad runs vanish on every step (vanishing_g = 1): no log growth; the others have one
    growth = claims[(claims["statistic"] == "growth_g") & (claims["workload"] != "dirac")]
    assert (growth["n_pairs"] >= 2).all() and growth["estimate"].notna().all()
    # the cost rows say how many runs reached the target; wall-clock time is not tested
    time = claims[claims["statistic"] == "time_to_target"]
    assert time["reached"].str.contains(r"\d+/\d+ base .*, \d+/\d+ projected").all()
    assert (time["verdict"] == "descriptive").all() and time["p_value"].isna().all()
    reach = claims[claims["statistic"] == "reached_target"]
    assert reach["verdict"].isin(["not observed", *verdicts.VERDICTS]).all()


def test_the_secondary_family_compares_every_pair_on_each_other_metric_with_a_margin(report):
    comparisons = pd.read_csv(report.parent / "comparisons.csv")
    paired = pd.read_csv(report.parent / "paired.csv")
    secondary = comparisons[comparisons["family"] == "secondary"]
    for wl, g in paired.groupby("workload"):
        metrics = ogan.workloads.get(wl).metrics
        expected = {m for m, info in metrics.items()
                    if info.margin is not None and m != g["metric"].iloc[0]}  # fmt: skip
        mine = secondary[secondary["workload"] == wl]
        assert len(mine) == len(g) * len(expected), wl  # every pair, baselines included
        assert set(mine["statistic"]) == expected
        tested = mine["p_value"].to_numpy(float)
        from bench.report.families import holm

        adjusted = holm(tested)  # Holm within the workload's secondary rows alone
        assert mine["p_adjusted"].to_numpy(float) == pytest.approx(adjusted, nan_ok=True)
    assert "mog-ring" in set(secondary["workload"])  # high quality, reverse KL, fd
    families = comparisons["family"].tolist()
    assert families == sorted(families, key=["confirmatory", "secondary", "exploratory"].index)


def test_no_interval_in_the_csv_tables_leaves_its_metric_s_range(report):
    summary = pd.read_csv(report.parent / "summary.csv")
    for row in summary.itertuples(index=False):
        metric = ogan.workloads.get(row.workload).metrics[
            {"bilinear": "distance", "dirac": "distance", "mog-ring": "modes"}[row.workload]
        ]
        low, high = metric.bounds
        if not math.isnan(row.final_ci_lo):
            assert row.final_ci_lo >= (0 if metric.log_scale else low), row
            assert high is None or row.final_ci_hi <= high
    # dirac does not depend on the seed: no spread, so no interval rather than a zero-width one
    dirac = summary.loc[summary["workload"] == "dirac"]
    assert (dirac["final_interval"] == "no spread: no interval").all()
    assert dirac["final_ci_lo"].isna().all()
    assert (summary["final_ci_lo"].dropna() >= 0).all()  # every metric here is non-negative


def test_bench_verdicts_of_the_runs_equals_the_report_built_from_them(report, sweep_dir, capsys):
    """One analysis: the runs analysed afresh give the verdicts the report wrote, row for row."""
    from bench.cli import main

    assert main(["verdicts", str(sweep_dir), str(report.parent)]) == 0
    out = capsys.readouterr().out
    table = compare_verdicts(sweep_dir, report.parent)
    assert len(table) == len(pd.read_csv(report.parent / "comparisons.csv")) > 0
    assert (table["verdict_a"] == table["verdict_b"]).all(), out
    assert "0 differ, 0 flipped" in out and "only in" not in out


@pytest.mark.parametrize("ties", [1, 8, 40, 200])  # 8 lost a dot at the old fixed size
def test_the_final_values_swarm_has_room_for_every_tied_run(tmp_path, ties):
    """Whole modes tie (7 of 10 seeds at 7): a swarm out of room drops dots with a warning."""
    import warnings

    import seaborn as sns

    from bench.report.figures.canvas import figure
    from bench.report.figures.workload import _swarm_room

    ok = pd.DataFrame({"optimizer": ["a"] * ties + ["b", "c"], "final": [7.0] * ties + [3, 3]})
    row, size = _swarm_room(ok)
    assert 0.55 <= row <= 1.5 and 0 < size <= 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # seaborn: "x% of the points cannot be placed"
        with figure(tmp_path, "swarm.png", 1, 1, 9, row * 3 + 1.8) as (_, axes):
            sns.swarmplot(data=ok, y="optimizer", x="final", size=size, ax=axes[0, 0])
    assert (tmp_path / "swarm.png").is_file()
