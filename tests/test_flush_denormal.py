"""``flush_denormal``: subnormal floats flushed to zero during a CPU run (x86 FTZ/DAZ).

Why it exists: ⊥Grad on D drives many of D's weights towards zero (at step 10,000 of the
default-ring-25k-players-b study, a sixth of D's second-layer weights were subnormal), and Intel
cores compute on subnormals through microcode assists: those populations stepped 4x slower on an
Intel Xeon than on an AMD EPYC. The speed is a benchmark's business (README, Performance); these
tests hold what the option means: on for the run, on the thread that computes it, restored
after, refused where it cannot hold, and another run (another run id) only when it is on.
"""

import pytest
import torch

import ogan
from bench.config import parse_sweep
from ogan.errors import ConfigError
from ogan.game import loop, resolve

pytestmark = pytest.mark.skipif(
    not loop.denormals_supported(), reason="torch cannot flush subnormals on this CPU"
)

SUBNORMAL = 1e-40  # below float32's smallest normal, 1.18e-38


def _subnormal_survives() -> bool:
    x = torch.tensor(1e-30, dtype=torch.float32)
    return (x * 1e-10).item() != 0.0 and (torch.tensor(SUBNORMAL) + 0).item() != 0.0


def test_the_mode_is_on_inside_and_as_before_after():
    assert not loop._flushing() and _subnormal_survives()
    with loop.flush_denormals(True):
        assert loop._flushing()
        assert (torch.tensor(SUBNORMAL) + 0).item() == 0.0  # DAZ: a subnormal input is 0
        assert (torch.tensor(1e-30) * 1e-10).item() == 0.0  # FTZ: a subnormal result is 0
    assert not loop._flushing() and _subnormal_survives()
    with loop.flush_denormals(False):
        assert not loop._flushing()
    torch.set_flush_denormal(True)  # a caller's own setting is left as it was
    try:
        with loop.flush_denormals(True):
            assert loop._flushing()
        assert loop._flushing()
    finally:
        torch.set_flush_denormal(False)
    assert not loop._flushing()


class _Watching(torch.optim.SGD):
    """SGD that notes, at every step, whether the thread flushes subnormals."""

    seen: list[bool] = []

    def step(self, closure=None):
        type(self).seen.append(loop._flushing())
        return super().step(closure)


@pytest.mark.parametrize("on", [True, False])
def test_a_run_flushes_at_every_step_only_when_asked(on):
    _Watching.seen = []
    result = ogan.train("mog-ring", {"name": _Watching, "lr": 1e-3}, steps=5, eval_every=5,
                        device="cpu", batch_size=16, threads=1, flush_denormal=on)  # fmt: skip
    # The run's ten steps (two players, five steps); the one before them is resolve's check of
    # the optimizer (a step on a scratch parameter, before the run, outside its settings).
    assert len(_Watching.seen) == 11 and _Watching.seen[1:] == [on] * 10
    assert result.config["flush_denormal"] is on
    assert not loop._flushing()  # restored after the run


def test_a_flushed_run_is_reproducible_and_a_population_flushes_too(monkeypatch):
    kw = dict(steps=30, eval_every=15, device="cpu", batch_size=32, threads=1)
    spec = {"name": "adam", "lr": 5e-3, "ortho": "weights", "ortho_players": "d"}
    a = ogan.train("mog-ring", spec, seed=1, flush_denormal=True, **kw)
    b = ogan.train("mog-ring", spec, seed=1, flush_denormal=True, **kw)
    assert a.history.drop(columns="wall_time").equals(b.history.drop(columns="wall_time"))
    asked = []
    real = loop.flush_denormals

    def noting(on):
        asked.append(on)
        return real(on)

    monkeypatch.setattr(loop, "flush_denormals", noting)
    ogan.train_population("mog-ring", spec, seeds=[1, 2], flush_denormal=True, **kw)
    ogan.train_population("mog-ring", spec, seeds=[1, 2], **kw)
    assert asked == [True, False]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"flush_denormal": "yes", "threads": 1},
         "flush_denormal must be true or false, not 'yes'"),
        ({"flush_denormal": 1, "threads": 1}, "flush_denormal must be true or false, not 1"),
        ({"flush_denormal": True}, "flush_denormal needs threads=1 (got threads=None)"),
        ({"flush_denormal": True, "threads": 2}, "flush_denormal needs threads=1 (got threads=2)"),
    ],
)
def test_bad_uses_are_one_line_errors(options, message):
    with pytest.raises(ConfigError) as info:
        resolve("mog-ring", {"name": "adam", "lr": 1e-3}, device="cpu", **options)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_cuda_run_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ConfigError, match=r"flush_denormal applies to CPU runs only .*remove it"):
        resolve("mog-ring", {"name": "adam", "lr": 1e-3}, device="cuda", threads=1,
                flush_denormal=True)  # fmt: skip
    assert resolve("mog-ring", {"name": "adam", "lr": 1e-3}, device="cuda", threads=1,
                   flush_denormal=False).flush_denormal is False  # fmt: skip


SWEEP = """
[sweep]
name = "t"
seeds = [0]
steps = 20
eval_every = 10

[[optimizer]]
name = "adam"
lr = 1e-3

[[workload]]
name = "mog-ring"
"""


def test_in_a_sweep_it_is_a_workload_key_false_is_the_default_run_and_true_another():
    ids = {}
    for line in ("", "flush_denormal = false\n", "flush_denormal = true\n"):
        (spec,) = parse_sweep(SWEEP + line, device="cpu").specs
        ids[line] = spec.run_id
        assert spec.train_kwargs().get("flush_denormal", False) is ("true" in line)
    assert ids[""] == ids["flush_denormal = false\n"] != ids["flush_denormal = true\n"]
    axis = parse_sweep(SWEEP + "flush_denormal = [false, true]\n", device="cpu").specs
    assert [s.run_id for s in axis] == [ids[""], ids["flush_denormal = true\n"]]


def test_a_checkpoint_written_before_the_option_existed_still_resumes(tmp_path):
    # Its configs lack the key; the run they describe is the default's, so it goes on.
    from ogan.game import checkpoint as ckpt

    config = resolve("mog-ring", {"name": "adam", "lr": 1e-3}, device="cpu", threads=1)
    now = config.to_dict()
    before = {k: v for k, v in now.items() if k != "flush_denormal"}
    path = tmp_path / "run.pt"
    ckpt.save(path, [before], {"step": 3})
    assert ckpt.load(path, [now]) == {"step": 3}
    flushed = resolve("mog-ring", {"name": "adam", "lr": 1e-3}, device="cpu", threads=1,
                      flush_denormal=True).to_dict()  # fmt: skip
    with pytest.raises(ConfigError, match="belongs to another run"):
        ckpt.load(path, [flushed])
