"""``python -m bench``: see :mod:`bench.cli`."""

import signal
import sys

from bench.cli import EXIT_INTERRUPTED, drop_repeated_interrupts, main

# The output names optimizers and statistics as the literature writes them (⊥Grad, xᵀAy, δ). A
# terminal that cannot show a character (an ASCII locale with Python's UTF-8 mode off) gets its
# \u escape instead of a UnicodeEncodeError traceback; a UTF-8 one is left as it is.
for stream in (sys.stdout, sys.stderr):
    if hasattr(stream, "reconfigure") and "utf" not in (stream.encoding or "").lower():
        stream.reconfigure(errors="backslashreplace")

drop_repeated_interrupts()  # timeout's SIGINT to the command and its group: one interrupt
code = main()
if code == EXIT_INTERRUPTED:  # what finished is stored: a repeat during exit must not kill it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.exit(code)
