"""The ogan benchmark harness: ``python -m bench {run,report,perf,list}``.

>>> import bench
>>> df = bench.load("results/default")   # every finished run's history, one tidy DataFrame
>>> bench.missing("results/default")      # the RunSpecs of sweep.json not finished yet
"""

from bench.store import load, load_records, load_runs, load_traces, missing, read_sweep

__all__ = ["load", "load_records", "load_runs", "load_traces", "missing", "read_sweep"]
