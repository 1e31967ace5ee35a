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
(``.item()``, ``.tolist()``, ``bool(tensor)``, data-dependent shapes): :func:`no_host_reads`
and :data:`HOST_READS` raise :class:`HostRead`.

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


class HostRead(AssertionError):
    """A device value read back to the host where a CUDA graph is being captured (on CUDA each
    such read waits for the device, and fails the capture)."""


@contextlib.contextmanager
def no_host_reads():
    """Any Python number or list taken out of a tensor inside the block raises
    :class:`HostRead`. The tensor methods are refused here; the reads torch makes below Python
    (:data:`HOST_READS`) are refused by a capture's recording."""

    def refuse(name):
        def read(self, *args, **kwargs):
            raise HostRead(f"Tensor.{name} reads a device value back to the host")

        return read

    names = ("item", "tolist", "__float__", "__int__", "__index__", "__bool__")
    saved = {name: getattr(torch.Tensor, name) for name in names}
    try:
        for name in names:
            setattr(torch.Tensor, name, refuse(name))
        yield
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)


def capturable_on_cpu(monkeypatch) -> None:
    """Let torch.optim's Adam take ``capturable=True`` for CPU tensors (refused by device name;
    the arithmetic is the same on any device)."""
    import importlib

    adam = importlib.import_module("torch.optim.adam")  # the module (torch.optim.adam is deleted)
    supported = adam._get_capturable_supported_devices
    monkeypatch.setattr(adam, "_get_capturable_supported_devices",
                        lambda *a, **k: [*supported(*a, **k), "cpu"])  # fmt: skip


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
            raise HostRead(f"{func} reads a device value back to the host during capture")
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
    from ogan import _cpu_kernel

    captured: list[ReplayGraph] = []

    @contextlib.contextmanager
    def graph(g: ReplayGraph):
        recording = _Recording()
        try:
            with no_host_reads(), recording:
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
    capturable_on_cpu(monkeypatch)
    monkeypatch.setattr(_cpu_kernel, "SUPPORTED_DTYPES", frozenset())  # foreach: seen, replayed
    return captured
