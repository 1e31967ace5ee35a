"""The ogan benchmark harness: ``python -m bench {run,report,perf,list}``.

>>> import bench
>>> df = bench.load("results/default")   # every finished run's history, one tidy DataFrame
"""

from bench.store import load, load_records, load_runs, load_traces

__all__ = ["load", "load_records", "load_runs", "load_traces"]
