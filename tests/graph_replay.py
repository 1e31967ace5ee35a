"""CUDA-graph semantics on the CPU: capture records the step's tensor operations once, replay
runs only them. What a graph freezes (every Python value the host computed while capturing)
stays frozen here too, so a step that is wrong under replay is wrong here, without a GPU.

Why written here: no library replays a step this way on a CPU. ``torch.cuda.graphs`` needs a
CUDA device; ``make_fx`` records the same aten operations but gives every output new memory at
each call, while a CUDA graph writes into the memory it captured, which the host keeps using
(the parameters' ``.grad``, the statistics row, optimizer state). So this records aten calls
with a ``TorchDispatchMode`` and replays them into the captured outputs, which is what a CUDA
graph's static memory amounts to.

A real capture records kernels without running them. Here the operations run while they are
recorded (their outputs need values to go on), and every tensor the step wrote is put back
afterwards, so that capturing leaves the device state as a real capture does: unchanged. Host
state (Python counters, ``p.grad`` bindings) changes as in a real capture.

A capture fails, as on CUDA, on an operation that reads a device value back to the host
(``.item()``, ``bool(tensor)``, data-dependent shapes): :data:`HOST_READS`.

Not covered, left to the device test (tests/test_graph.py, ``bench perf --device cuda``):

- kernels launched outside the dispatcher (ogan's ctypes CPU projection, Triton), which a real
  graph captures but this cannot see: ⊥Grad runs its ``foreach`` path here (:func:`emulate`
  sees to it);
- operations on host tensors: on a GPU a CPU tensor's operations run once, while capturing, and
  are not replayed; here every tensor is on the CPU, so all of them are replayed;
- what CUDA itself refuses while capturing (copies from pageable host memory, new streams).
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

aten = torch.ops.aten
HOST_READS = {
    aten._local_scalar_dense.default,  # .item(), bool(), int(), float() of a tensor
    aten.equal.default,
    aten.is_nonzero.default,
    aten.nonzero.default,  # data-dependent output shapes
    aten.masked_select.default,
    aten._unique2.default,
}


class CaptureError(RuntimeError):
    pass


def _written(func, args, kwargs) -> list[torch.Tensor]:
    """The tensors ``func`` writes in place (its schema's ``a!`` arguments)."""
    out = []
    schema = func._schema
    for i, arg in enumerate(schema.arguments):
        if arg.alias_info is None or not arg.alias_info.is_write:
            continue
        value = kwargs.get(arg.name) if (arg.kwarg_only or i >= len(args)) else args[i]
        if isinstance(value, torch.Tensor):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            out += [v for v in value if isinstance(v, torch.Tensor)]
    return out


class _Recording(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list[tuple[Any, tuple, dict, Any]] = []
        self.saved: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # first value of a write

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in HOST_READS:
            raise CaptureError(f"{func} reads a device value back to the host during capture")
        for t in _written(func, args, kwargs):
            if id(t) not in self.saved:
                self.saved[id(t)] = (t, t.detach().clone())
        out = func(*args, **kwargs)
        self.ops.append((func, args, kwargs, out))
        return out


def _same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (
        a.data_ptr() == b.data_ptr()
        and a.shape == b.shape
        and a.stride() == b.stride()
        and a.dtype == b.dtype
    )


class ReplayGraph:
    """Stands in for ``torch.cuda.CUDAGraph``."""

    ops: list[tuple[Any, tuple, dict, Any]]

    def replay(self) -> None:
        with torch.no_grad():
            for func, args, kwargs, out in self.ops:
                new = func(*args, **kwargs)
                got, _ = tree_flatten(new)
                kept, _ = tree_flatten(out)
                for k, n in zip(kept, got, strict=True):
                    if isinstance(k, torch.Tensor) and k is not n and not _same_memory(k, n):
                        k.copy_(n)


def emulate(monkeypatch) -> list[ReplayGraph]:
    """Make :mod:`ogan.game.graph` capture and replay through :class:`ReplayGraph` on the CPU;
    returns the graphs captured, in order."""
    import importlib

    from ogan import _cpu_kernel

    captured: list[ReplayGraph] = []

    @contextlib.contextmanager
    def graph(g: ReplayGraph):
        recording = _Recording()
        try:
            with recording:
                yield
        finally:
            with torch.no_grad():  # the device state as before: a capture runs nothing
                for t, value in reversed(list(recording.saved.values())):
                    t.copy_(value)
        g.ops = recording.ops
        captured.append(g)

    stream = SimpleNamespace(wait_stream=lambda other: None)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", ReplayGraph)
    monkeypatch.setattr(torch.cuda, "graph", graph)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: stream)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    adam = importlib.import_module("torch.optim.adam")  # capturable=True refused on CPU by name
    supported = adam._get_capturable_supported_devices
    monkeypatch.setattr(adam, "_get_capturable_supported_devices",
                        lambda *a, **k: [*supported(*a, **k), "cpu"])  # fmt: skip
    monkeypatch.setattr(_cpu_kernel, "SUPPORTED_DTYPES", frozenset())  # foreach: seen, replayed
    return captured
