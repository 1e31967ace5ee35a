"""The report's forest plot (``bench.report.figures.forest``) drawn on hand-made comparisons:
what it marks at the axis edge, and its axis label kept inside the figure."""

from __future__ import annotations

import contextlib
import importlib
from types import SimpleNamespace

import pandas as pd

# the module, not the function of the same name that bench.report.figures exports
forest_module = importlib.import_module("bench.report.figures.forest")


def _drawn(monkeypatch, tmp_path, rows, arm="arm", base="adam", statistic="modes"):
    """The figure ``forest`` draws for ``rows`` (effect, CI low, CI high on a difference scale,
    δ = 1, higher is better), drawn and written as a report's, and captured."""
    captured = {}
    real = forest_module.figure

    @contextlib.contextmanager
    def figure(*args, **kwargs):
        with real(*args, **kwargs) as (fig, axes):
            captured["fig"] = fig
            yield fig, axes

    monkeypatch.setattr(forest_module, "figure", figure)
    c = pd.DataFrame([
        {"workload": "w", "family": "confirmatory", "kind": "declared",
         "projected": f"{arm}{i or ''}", "base": base,
         "statistic": statistic, "verdict": "better", "p_value": 0.01, "design": "fixed",
         "higher_is_better": True, "delta": 1.0, "estimate": est, "estimate_ci_lo": lo,
         "estimate_ci_hi": hi}
        for i, (est, lo, hi) in enumerate(rows)])  # fmt: skip
    a = SimpleNamespace(comparisons=c, names={n: n for n in [*c["projected"], base]}, show=str)
    assert forest_module.forest(a, "w", tmp_path, {}) is not None
    assert (tmp_path / "fig-w-forest.png").stat().st_size > 0
    return captured["fig"]


def _edge_markers(fig):
    ax = fig.axes[0]
    return sorted((line.get_marker(), float(line.get_xdata()[0])) for line in ax.lines
                  if line.get_marker() in ("<", ">"))  # fmt: skip


def test_an_interval_cut_at_the_edge_is_marked_there(monkeypatch, tmp_path):
    # the first row's interval runs past −8 δ on the left, the second's past +8 δ on the right;
    # the third lies inside; the fourth's point itself is beyond the edge (marked as before)
    fig = _drawn(monkeypatch, tmp_path, [(-6.8, -12.0, -2.0), (5.0, 2.0, 9.5), (1.0, 0.5, 1.5),
                                          (11.0, 9.0, 13.0)])  # fmt: skip
    assert _edge_markers(fig) == [("<", -8.0), (">", 8.0), (">", 8.0)]


def test_no_edge_marker_when_every_interval_fits(monkeypatch, tmp_path):
    assert _edge_markers(_drawn(monkeypatch, tmp_path, [(1.0, 0.2, 1.8), (-2.0, -3.0, -1.0)])) == []


def test_the_axis_label_stays_inside_the_figure_under_long_row_labels(monkeypatch, tmp_path):
    # the longest row label of a real report (unrolled-ring-25k-cpu-optimistic-vs-lookahead):
    # "optimistic-adam vs lookahead(adam): grad. evals to target (both reached)" narrows the
    # axes; a one-line axis label ran off the figure's right edge there
    fig = _drawn(monkeypatch, tmp_path, [(1.0, 0.2, 1.8)] * 2, arm="optimistic-adam",
                 base="lookahead(adam)", statistic="grad_evals_to_target")  # fmt: skip
    fig.draw_without_rendering()
    box = fig.axes[0].xaxis.label.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width
