"""``capturable=True``: every registered optimizer that keeps a step counter keeps it on the
parameters' device, reads nothing back to the host in ``step``, and equals its default self.

On a CPU nothing can be "read back", so a host read is caught where Python gets a number out of
a tensor (``item``, ``float``, ``int``, ``bool``, ``tolist``): during a capturable step those
raise. torch.optim refuses ``capturable=True`` on a CPU by its list of supported devices only
(the arithmetic is device ops either way), so the tests add the CPU to that list.
"""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
from graph_replay import HostRead, capturable_on_cpu, no_host_reads
from test_optim import drive

from ogan import optim
from ogan.optim import OptimisticAdam, common

STEPS = 6


@pytest.fixture(autouse=True)
def _capturable_on_cpu(monkeypatch):
    capturable_on_cpu(monkeypatch)


CAPTURABLE = ["adam", "ttur", "ogda", "optimistic-adam", "extra-adam", "past-extra-adam",
              "lookahead", "muon"]  # fmt: skip
"""Registered optimizers that take ``capturable``; sgd and extra-sgd keep no step counter and,
as torch.optim.SGD, have no such flag (their steps read nothing back)."""


def test_every_registered_optimizer_with_a_step_counter_accepts_capturable():
    takes = [name for name in optim.OPTIMIZERS if "capturable" in optim.hyperparameters(name)]
    assert takes == CAPTURABLE


def _model() -> torch.nn.Module:
    torch.manual_seed(5)  # a matrix for Muon, biases for its Adam part
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2))


def _run(name, capturable, ortho=None, guard=contextlib.nullcontext):
    x = torch.randn(12, 4, generator=torch.Generator().manual_seed(0))
    model = _model()
    opt = optim.build(name, model.parameters(), lr=0.01, capturable=capturable, ortho=ortho)
    drive(opt, model, STEPS, x, guard=guard)
    return model, opt


def _inner(opt):
    while hasattr(opt, "base"):
        opt = opt.base
    return opt


@pytest.mark.parametrize("ortho", [None, "weights"])
@pytest.mark.parametrize("name", CAPTURABLE)
def test_a_capturable_step_reads_nothing_back_and_equals_the_default_one(name, ortho):
    model, opt = _run(name, True, ortho, guard=no_host_reads)
    ref_model, ref_opt = _run(name, False, ortho)
    # float rounding only: beta**t in float32 on the device against float64 on the host, whose
    # relative error 1 - beta2**t amplifies ~1000-fold in the first steps: ~4e-5 of a step
    # (torch.optim.Adam's own two modes differ by 4e-7 here, at lr 0.01); 1e-4 of a step allowed
    for p, q in zip(model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    state, ref_state = _inner(opt).state, _inner(ref_opt).state
    half_steps = 2 if name == "extra-adam" else 1  # Extra-Adam counts both half-steps
    for p, q in zip(model.parameters(), ref_model.parameters()):
        s, r = state[p], ref_state[q]
        for key in ("exp_avg", "exp_avg_sq", "previous", "momentum_buffer"):
            if key in r:  # to 1e-4 of the state's scale (its gradients differ that little)
                scale = float(r[key].abs().max())
                torch.testing.assert_close(s[key], r[key], rtol=0, atol=1e-4 * scale)
        if "step" in r:
            assert isinstance(s["step"], torch.Tensor) and s["step"].device == p.device
            assert s["step"].dtype == torch.float32
            assert float(s["step"]) == float(r["step"]) == STEPS * half_steps
        elif name != "ogda":  # ogda keeps no counter; Muon's matrices neither, its biases do
            assert name == "muon" and p.ndim == 2


@pytest.mark.parametrize("name", ["adam", "past-extra-adam"])
def test_the_guard_catches_the_default_steps_host_reads(name):
    """torch.optim.Adam's default step reads its CPU counter (``.item()``); PastExtraAdam's
    extrapolation its counter (``float``): the guard is not vacuous."""
    with pytest.raises(HostRead):
        _run(name, False, guard=no_host_reads)


def test_the_shared_adam_direction_on_device_counters_is_the_host_one():
    torch.manual_seed(3)
    m, v = [torch.randn(5), torch.randn(3)], [torch.rand(5), torch.rand(3)]
    for t in (1, 2, 10, 1000):
        host = common.adam_direction(m, v, [t, t + 1], (0.5, 0.9), 1e-6)
        counters = [torch.tensor(float(t)), torch.tensor(t + 1.0)]
        with no_host_reads():
            device = common.adam_direction(m, v, counters, (0.5, 0.9), 1e-6)
        for a, b in zip(device, host):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=0)


@pytest.mark.parametrize("first", [False, True])
def test_a_counter_follows_capturable_when_it_is_switched_between_steps(first):
    """The graph path switches ``capturable`` on before capturing; a state saved by one mode
    resumes in the other with the same count."""
    p = torch.nn.Parameter(torch.ones(3))
    opt = OptimisticAdam([p], lr=0.1, capturable=first)
    for capturable in (first, not first, first):
        opt.param_groups[0]["capturable"] = capturable
        p.grad = torch.full((3,), 0.5)
        opt.step()
        assert isinstance(opt.state[p]["step"], torch.Tensor) == capturable
    assert float(opt.state[p]["step"]) == 3


def test_a_state_saved_before_the_flag_existed_loads_as_not_capturable():
    model = _model()
    opt = OptimisticAdam(model.parameters(), lr=0.1)
    x = torch.randn(12, 4, generator=torch.Generator().manual_seed(0))
    drive(opt, model, 2, x)
    saved = copy.deepcopy(opt.state_dict())
    for group in saved["param_groups"]:
        del group["capturable"]
    fresh = OptimisticAdam(_model().parameters(), lr=0.1, capturable=True)
    fresh.load_state_dict(saved)
    assert [g["capturable"] for g in fresh.param_groups] == [False]


def test_a_spec_with_capturable_trains_and_records_it_with_the_default_runs_losses():
    import ogan

    kw = dict(steps=8, eval_every=4, device="cpu", seed=2, hidden=8, batch_size=16)
    spec = {"name": "optimistic-adam", "lr": 1e-3, "ortho": "weights"}
    on = ogan.train("mog-ring", {**spec, "capturable": True}, **kw)
    off = ogan.train("mog-ring", spec, **kw)
    assert on.config["optimizer"]["capturable"] is True
    for column in ("loss_g", "loss_d"):
        torch.testing.assert_close(torch.tensor(on.trace[column].values),
                                   torch.tensor(off.trace[column].values),
                                   rtol=1e-5, atol=1e-6)  # fmt: skip
