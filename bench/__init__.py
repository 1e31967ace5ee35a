"""The ogan benchmark harness: ``python -m bench {run,report,perf,list}``.

>>> import bench
>>> df = bench.load("results/default")   # every finished run's history, one tidy DataFrame
>>> bench.missing("results/default")      # the RunSpecs of sweep.json not finished yet
>>> a = bench.analyse("results/default")  # the report's one analysis: a.comparisons, a.summary
"""

import os
from typing import Any

from bench.store import load, load_records, load_runs, load_traces, missing, read_sweep


def analyse(path: str | os.PathLike) -> Any:
    """The report's analysis of the results under ``path`` (:func:`bench.report.analyse_dir`),
    imported on first use: the report pulls in seaborn, which ``bench run`` does not need."""
    from bench.report import analyse_dir

    return analyse_dir(path)


__all__ = ["analyse", "load", "load_records", "load_runs", "load_traces", "missing", "read_sweep"]
