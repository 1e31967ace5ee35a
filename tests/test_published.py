"""The report's "Published vs ours" section: the published rows beside ours, same statistic."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bench
import ogan
from bench.report import build_report
from bench.report.document.formatting import num
from bench.report.published import load_published, mean_se
from bench.spec import RunSpec, freeze
from bench.store import environment, write_run

SEEDS = (0, 1, 2)
ADAM = {"name": "adam", "betas": [0.8, 0.999], "lr": 1e-3}


def _write(root: Path, options: dict, variants: dict) -> None:
    env = environment("cpu")
    for label, optimizer in variants.items():
        for seed in SEEDS:
            spec = RunSpec(
                sweep=root.name,
                workload="mog-ring",
                workload_options=freeze(options),
                optimizer=freeze(optimizer),
                label=label,
                seed=seed,
                steps=2,
                eval_every=2,
                device="cpu",
            )
            write_run(root, spec, ogan.train(**spec.train_kwargs(), threads=1), env)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("published")
    pacgan = {"arch": "pacgan", "batch_size": 8, "scheme": "simultaneous"}
    _write(root / "pac", pacgan, {"adam": ADAM, "adam+ortho": {**ADAM, "ortho": "weights"}})
    _write(root / "plain", {"hidden": 8, "batch_size": 8}, {"adam": ADAM})
    return root


def test_mean_se_is_the_mean_and_the_standard_error_over_finite_values():
    mean, se, n = mean_se(pd.Series([1.0, 2.0, 3.0, 4.0, math.nan]))
    assert (mean, n) == (2.5, 4)
    assert se == pytest.approx(math.sqrt(5 / 3) / 2, rel=1e-12)  # sd 1.291 over √4


def test_published_rows_are_pacgan_table_1_gan_rows_with_their_source():
    rows = {r.workload: r for r in load_published()}
    ring, grid = rows["mog-ring"], rows["mog-grid"]
    assert ring.values == {"modes": (6.3, 0.5), "high_quality": (0.982, 0.002),
                           "reverse_kl": (0.45, 0.09)}  # fmt: skip
    assert grid.values == {"modes": (17.3, 0.8), "high_quality": (0.948, 0.007),
                           "reverse_kl": (0.70, 0.07)}  # fmt: skip
    assert ring.options == {"arch": "pacgan", "packing": 1} and ring.steps == 400_000
    assert "Table 1" in ring.source and ring.runs == 10


def test_report_puts_ours_beside_the_published_row_with_the_same_statistic(results):
    text = (build_report(results).parent / "report.md").read_text(encoding="utf-8")
    assert "Published vs ours" in text
    section = text[text.index("## Published vs ours") :]
    section = section[: section.index("\n## ", 1)]
    assert "6.3 ± 0.5" in section and "98.2 ± 0.2" in section and "0.45 ± 0.09" in section
    ours = [line for line in section.splitlines() if "ours:" in line]
    assert len(ours) == 2  # adam and adam+ortho under arch = pacgan; the default-arch run is not
    runs = bench.load_runs(results / "pac")
    adam = runs[runs["optimizer"] == "adam"]
    mean, se, _ = mean_se(adam["final_modes"])
    line = next(x for x in ours if "ours: adam (" in x)
    assert f"{num(mean, 3)} ± {num(se, 2)}; Δ {num(mean - 6.3, 2)}" in line
    assert f"± {num(math.hypot(se, 0.5), 2)}" in line
    hq = adam["final_high_quality"].to_numpy()
    assert f"{num(100 * hq.mean(), 3)} ± {num(100 * hq.std(ddof=1) / np.sqrt(3), 2)}" in line


def test_no_published_section_without_a_run_of_a_published_protocol(results):
    text = (build_report(results / "plain").parent / "report.md").read_text(encoding="utf-8")
    assert "Published vs ours" not in text
