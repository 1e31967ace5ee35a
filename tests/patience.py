"""How long a test waits for another process before calling it hung: scaled to the machine's load.

A test's waits (a subprocess to finish, a run file to appear, a Dask worker to register) are
hang guards, never measurements. Each base value is generous on an idle 2-core machine; it is
multiplied by how oversubscribed the machine is when the wait starts (the 1-minute load average
per core, at least 1), so that a suite sharing its cores with other work waits longer rather
than failing, and by ``OGAN_TEST_PATIENCE`` (default 1) for machines slower than any seen.
"""

from __future__ import annotations

import os


def patience(seconds: float) -> float:
    """``seconds`` of an idle machine, in seconds of this machine as loaded now."""
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return seconds * max(1.0, load / cores) * float(os.environ.get("OGAN_TEST_PATIENCE", "1"))
