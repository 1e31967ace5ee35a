"""The README's examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import torch

import ogan

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks(section: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def test_the_five_line_example_and_the_build_examples_run():
    blocks = _python_blocks("The optimizers in your own loop")
    assert len(blocks) == 2 and len(blocks[0].strip().splitlines()) == 5
    namespace: dict = {}
    exec(blocks[0], namespace)
    assert isinstance(namespace["opt"], ogan.optim.Ortho)
    assert torch.isfinite(namespace["loss"]) and namespace["opt"].last_stats is not None
    exec(blocks[1], namespace)
    assert isinstance(namespace["opt"], ogan.optim.Ortho)
    assert isinstance(namespace["opt"].base, torch.optim.Adam)


def test_the_performance_table_is_the_committed_baseline():
    import json

    from bench.perf.gate import BASELINE, markdown

    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- perf-table")
    block = text[text.index("\n", start) + 1 : text.index("<!-- /perf-table -->")].strip()
    assert block == markdown(json.loads(BASELINE.read_text(encoding="utf-8")))
