"""Counter-based random streams: a member's batches depend on its own seed only, drawn at once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from patience import patience
from torch.utils._python_dispatch import TorchDispatchMode

import ogan
from ogan.errors import ConfigError
from ogan.game import Game, resolve, streams
from ogan.game.population import PopulationGame
from ogan.game.streams import Streams, fused_normal_ok, key
from ogan.workloads.base import Workload
from ogan.workloads.mog import MoGRing

MASK = 2**64 - 1


def splitmix64(seed: int, n: int) -> list[int]:
    """SplitMix64 in Python integers, as Steele et al. (2014) and Vigna's splitmix64.c write it."""
    out, state = [], seed & MASK
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        out.append(z ^ (z >> 31))
    return out


def test_each_member_stream_is_splitmix64_from_its_key():
    assert splitmix64(0, 1) == [0xE220A8397B1DCDAF]  # the published first output for seed 0
    keys = [0, 1234567, -5, key(3)]
    streams = Streams(torch.tensor(keys))
    first, second = streams._bits(3), streams._bits(4)  # the position carries on
    for m, k in enumerate(keys):
        drawn = [int(x) & MASK for x in torch.cat([first[m], second[m]])]
        assert drawn == splitmix64(k, 7)
    assert int(streams.position) == 7


def test_uniforms_normals_and_integers_have_their_distributions():
    streams = Streams(torch.tensor([key(0), key(1)]))
    z = streams.normal((20_000,))
    assert z.shape == (2, 20_000) and z.dtype == torch.float32
    assert z.mean(1).abs().max() < 0.03 and (z.std(1) - 1).abs().max() < 0.03
    u = streams.uniform((20_000,))
    assert float(u.min()) >= 0 and float(u.max()) < 1 and abs(float(u.mean()) - 0.5) < 0.01
    counts = torch.bincount(streams.randint(8, (80_000,)).flatten(), minlength=8)
    assert counts.shape == (8,) and int(counts.min()) > 19_000 and int(counts.max()) < 21_000
    with pytest.raises(ValueError, match="0 < high < 2"):
        streams.randint(0, (3,))


@pytest.mark.parametrize("workload", ["mog-ring", "digits"])
def test_a_members_batches_are_the_same_in_every_population_and_alone(workload):
    def batches(game, n=3):
        return [game._sample() for _ in range(n)]

    def configs(seeds):
        return [resolve(workload, "adam", seed=s, device="cpu", streams="counter",
                        batch_size=16) for s in seeds]  # fmt: skip

    alone = batches(Game(configs([5])[0]))
    for seeds in ([5], [5, 9], [9, 5, 2]):
        slot = seeds.index(5)
        for mine, ref in zip(batches(PopulationGame(configs(seeds))), alone):
            assert torch.equal(mine.real[slot], ref.real)  # bit for bit
            assert torch.equal(mine.z[slot], ref.z)
    other = batches(Game(configs([9])[0]), 1)[0]
    assert not torch.equal(other.z, alone[0].z)  # another seed, other numbers


class _Ops(TorchDispatchMode):
    """The aten operations run inside: kernels launched, and host reads (``.item()``)."""

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def _sampling_ops(seeds, streams):
    game = PopulationGame([resolve("mog-ring", "adam", seed=s, device="cpu", streams=streams)
                           for s in seeds])  # fmt: skip
    with _Ops() as mode:
        game._sample()
    return mode.ops


def test_counter_streams_draw_every_batch_with_a_fixed_number_of_ops_and_no_host_read():
    counts = {p: _sampling_ops(range(p), "counter") for p in (1, 3, 8)}
    assert len(counts[1]) == len(counts[3]) == len(counts[8])
    assert not any("_local_scalar_dense" in op or "item" in op for op in counts[8])
    torch_counts = {p: len(_sampling_ops(range(p), "torch")) for p in (1, 3)}
    assert torch_counts[3] > torch_counts[1]  # a generator per member: a draw per member


@pytest.mark.parametrize("members", [(), (0,), (1,), (3,), (10,)])
@pytest.mark.parametrize("block", [streams.BLOCK, 64, 100])
def test_the_cpu_draws_normals_in_blocks_with_the_reference_numbers(monkeypatch, members, block):
    # blocks of 64 and 100 numbers: many blocks, a last one ragged, columns of 16 per member
    monkeypatch.setattr(streams, "BLOCK", block)
    seeds = range(members[0] if members else 1)
    keys = torch.tensor([key(s) for s in seeds], dtype=torch.int64).reshape(members)
    for dtype in (torch.float32, torch.float64):
        blocked, plain = Streams(keys.clone()), Streams(keys.clone())
        for shape in ((0,), (1,), (7,), (33,), (512, 3), (4099,), (3, 0)):
            got, want = blocked.normal(shape, dtype), plain._normal(shape, dtype)
            assert got.shape == want.shape == (*members, *shape) and got.dtype == dtype
            assert got.is_contiguous() and torch.equal(got, want)  # bit for bit
            assert int(blocked.position) == int(plain.position)


def test_the_cpu_blocks_tile_the_whole_draw_not_the_members():
    def ops(p, shape):
        drawn = Streams(torch.tensor([key(s) for s in range(p)]))
        with _Ops() as mode:
            drawn.normal(shape)
        return len(mode.ops)

    # as many ops for 1 member as for 64 while the draw fits a block: no loop over members
    assert ops(1, (16,)) == ops(64, (16,)) == ops(64, (streams.BLOCK // 128,))
    # a draw of several blocks: their number follows its size, whatever splits it into members
    assert ops(4, (streams.BLOCK,)) == ops(8, (streams.BLOCK // 2,)) > ops(1, (16,))


def test_a_member_trains_the_same_run_in_every_population():
    kw = dict(steps=12, eval_every=6, device="cpu", threads=1, streams="counter", hidden=8,
              batch_size=16)  # fmt: skip
    alone = ogan.train("mog-ring", "adam", seed=5, **kw)
    for seeds in ([5], [5, 9], [9, 5, 2]):
        member = ogan.train_population("mog-ring", "adam", seeds=seeds, **kw)[seeds.index(5)]
        # the batched kernels sum in another order than the standalone ones: float tolerance
        for column in ("loss_g", "loss_d", "grad_norm_g", "grad_norm_d"):
            torch.testing.assert_close(
                torch.tensor(member.trace[column].values), torch.tensor(alone.trace[column].values),
                rtol=1e-4, atol=1e-6,
            )  # fmt: skip


def test_a_population_with_counter_streams_resumes_from_its_checkpoint(tmp_path):
    kw = dict(seeds=[3, 1, 4], steps=10, eval_every=5, device="cpu", threads=1,
              streams="counter", hidden=8, batch_size=16)  # fmt: skip
    whole = ogan.train_population("mog-ring", "adam", **kw)
    path = tmp_path / "p.pt"
    ogan.train_population("mog-ring", "adam", checkpoint=path, checkpoint_every=4, **kw)
    resumed = ogan.train_population("mog-ring", "adam", checkpoint=path, **kw)
    for a, b in zip(resumed, whole):
        assert a.trace.drop(columns="step_time").equals(b.trace.drop(columns="step_time"))


class _NoStreams(MoGRing):
    sample_streams = Workload.sample_streams  # as a user's workload that lacks the method


@pytest.mark.parametrize(
    ("workload", "streams", "message"),
    [
        ("mog-ring", "philox", "Unknown streams 'philox'; valid: torch, counter"),
        (_NoStreams, "counter", "has no sample_streams: use streams='torch'"),
    ],
)
def test_bad_streams_are_one_line_errors(workload, streams, message):
    with pytest.raises(ConfigError, match=message):
        resolve(workload, "adam", device="cpu", streams=streams)


# -- the Triton kernel of the normals (CUDA; here under the Triton interpreter) ------------------

TRITON_STREAMS_SCRIPT = textwrap.dedent(
    """
    import torch
    from ogan import _triton_streams as K
    from ogan.game import streams as S

    for members in ((), (3,)):
        keys = torch.tensor([S.key(s) for s in range(3)])
        keys = keys[0] if members == () else keys
        for shape in ((1,), (2,), (7,), (512, 3), (1001,)):
            for dtype in (torch.float32, torch.float64):
                fused, plain = S.Streams(keys.clone()), S.Streams(keys.clone())
                for draw in range(2):  # the position carries on alike
                    got = K.normal(fused.keys, fused.position, shape, dtype)
                    want = plain._normal(shape, dtype)
                    assert got.shape == want.shape == (*members, *shape)
                    rel = ((got.double() - want.double()).abs()
                           / want.double().abs().clamp_min(1e-300)).max()
                    if dtype == torch.float64:  # float64 log/cos/sin: a last bit at most
                        assert float(rel) < 5e-16, (members, shape, float(rel))
                    else:
                        assert int((got != want).sum()) <= 1 and float(rel) <= 2**-23
                    assert int(fused.position) == int(plain.position)
    # a large draw: float32 numbers equal bit for bit
    keys = torch.tensor([S.key(s) for s in range(8)])
    fused, plain = S.Streams(keys), S.Streams(keys.clone())
    got = K.normal(fused.keys, fused.position, (65536,), torch.float32)
    want = plain._normal((65536,), torch.float32)
    print("DIFFER", int((got != want).sum()), "OF", want.numel())
    assert S.check_fused_normal(torch.device("cpu"), torch.float32) == (True, "")

    real = K.normal  # a kernel that is off by one float32 ulp everywhere is refused
    K.normal = lambda *a: real(*a).nextafter(torch.tensor(float("inf")))
    ok, why = S.check_fused_normal(torch.device("cpu"), torch.float32)
    assert not ok and "numbers differ from the torch path" in why, why
    print("STREAMS-OK")
    """
)


def test_the_triton_normals_are_the_torch_paths_under_the_interpreter():
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, "-c", TRITON_STREAMS_SCRIPT], env=env,
                          capture_output=True, text=True, timeout=patience(600))  # fmt: skip
    assert "STREAMS-OK" in proc.stdout, proc.stderr[-3000:]
    assert "DIFFER 0 OF 524288" in proc.stdout


def test_without_a_working_kernel_the_torch_path_draws_and_says_so_once(capsys, monkeypatch):
    assert not fused_normal_ok(torch.device("cpu"), torch.float32)  # CPU: torch ops, always
    if torch.cuda.is_available():
        pytest.skip("a CUDA device: the check can pass here")
    # a CUDA device whose check draw fails (here: it cannot even allocate)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: False)
    streams._FUSED.clear()
    cuda = torch.device("cuda")
    assert not fused_normal_ok(cuda, torch.float32)
    assert not fused_normal_ok(cuda, torch.float32)  # decided once
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "use torch ops, not the Triton kernel" in err[0]
    streams._FUSED.clear()
