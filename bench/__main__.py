"""``python -m bench``: see :mod:`bench.cli`."""

import sys

from bench.cli import main

# The output names optimizers and statistics as the literature writes them (⊥Grad, xᵀAy, δ). A
# terminal that cannot show a character (an ASCII locale with Python's UTF-8 mode off) gets its
# \u escape instead of a UnicodeEncodeError traceback; a UTF-8 one is left as it is.
for stream in (sys.stdout, sys.stderr):
    if hasattr(stream, "reconfigure") and "utf" not in (stream.encoding or "").lower():
        stream.reconfigure(errors="backslashreplace")

sys.exit(main())
