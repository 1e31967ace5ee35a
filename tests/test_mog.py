"""Mixture-of-Gaussians workloads and their mode metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import ogan
from ogan.errors import ConfigError
from ogan.metrics.frechet import frechet_distance, gaussian_stats
from ogan.metrics.modes import mixture_stats, mode_metrics
from ogan.workloads import nets
from ogan.workloads.mog import EVAL_SAMPLES, MoGGrid, MoGRing


@pytest.mark.parametrize("cls", [MoGRing, MoGGrid])
def test_samples_from_the_true_mixture_score_every_mode_and_high_quality(cls):
    workload = cls(cls.parse_options(), torch.device("cpu"))
    batch = workload.sample(EVAL_SAMPLES, torch.Generator().manual_seed(0))
    m = mode_metrics(batch.real.double().numpy(), cls.centers(), cls.std)
    assert m["modes"] == len(cls.centers())
    assert m["high_quality"] >= 0.97  # 1 - exp(-9/2) = 98.9% of a 2-D Gaussian lies within 3 std
    assert m["reverse_kl"] < 0.02
    exact = mixture_stats(cls.centers(), cls.std)
    fd = frechet_distance(*gaussian_stats(batch.real.numpy()), *exact)
    assert fd < 0.02


@pytest.mark.parametrize("cls", [MoGRing, MoGGrid])
def test_samples_all_on_one_mode_score_one_mode(cls):
    centers = cls.centers()
    rng = np.random.default_rng(0)
    samples = centers[3] + cls.std * rng.normal(size=(EVAL_SAMPLES, 2))
    m = mode_metrics(samples, centers, cls.std)
    assert m["modes"] == 1
    assert m["reverse_kl"] == pytest.approx(math.log(len(centers)))
    assert m["high_quality"] >= 0.97


def test_ring_has_eight_distinct_modes_at_radius_one():
    c = MoGRing.centers()
    assert len(c) == 8
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0)
    gaps = np.linalg.norm(c[:, None] - c[None], axis=-1) + np.eye(8)
    assert gaps.min() == pytest.approx(2 * math.sin(math.pi / 8))  # no repeated endpoint


def test_grid_has_25_modes_on_the_lattice():
    c = MoGGrid.centers()
    assert len(c) == 25 and len({tuple(x) for x in c}) == 25
    assert set(np.unique(c)) == {-4.0, -2.0, 0.0, 2.0, 4.0}


def test_far_samples_are_not_high_quality_and_capture_nothing():
    samples = np.full((100, 2), 10.0)
    m = mode_metrics(samples, MoGRing.centers(), MoGRing.std)
    assert m["high_quality"] == 0 and m["modes"] == 0


def test_mixture_stats_are_the_exact_moments():
    centers = np.array([[1.0, 0.0], [-1.0, 0.0]])
    mu, sigma = mixture_stats(centers, 0.5)
    np.testing.assert_allclose(mu, [0, 0])
    np.testing.assert_allclose(sigma, [[1.25, 0], [0, 0.25]])


# -- PacGAN's metric rules, on hand-computed cases ----------------------------------------------


def test_pacgan_metrics_on_a_hand_computed_sample():
    # four modes and std 0.5: every distance below is exact in binary floating point
    centers, std = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]]), 0.5
    samples = np.array([
        [0.0, 0.0], [0.0, 0.0], [0.1, -0.1],  # three high-quality samples at mode 0
        [5.25, 0.0],                          # 2.5 std from mode 1: high quality
        [0.0, 5.5],                           # exactly 3 std from mode 2: not (the rule is < 3)
        [100.0, 100.0],                       # far from every mode
    ])  # fmt: skip
    m = mode_metrics(samples, centers, std)
    assert m["high_quality"] == pytest.approx(4 / 6)
    assert m["modes"] == 2  # mode 2's only sample is not high quality
    # q = (3/4, 1/4, 0, 0) over the high-quality samples; KL(q || uniform over 4) = log 4 - H(q)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert m["reverse_kl"] == pytest.approx(math.log(4) - h, rel=1e-12)
    assert m["reverse_kl"] == pytest.approx(0.8239592165, abs=1e-9)


def test_one_high_quality_sample_captures_a_mode_and_empty_modes_add_nothing_to_the_kl():
    c, std = MoGGrid.centers(), MoGGrid.std
    samples = np.concatenate([np.repeat(c[:1], 99, axis=0), c[1:2]])  # 99 at mode 0, 1 at mode 1
    m = mode_metrics(samples, c, std)
    assert m["modes"] == 2
    q = np.array([0.99, 0.01])
    assert m["reverse_kl"] == pytest.approx(float((q * np.log(q * 25)).sum()), rel=1e-12)


def test_samples_spread_evenly_over_every_mode_have_zero_reverse_kl():
    c = MoGRing.centers()
    m = mode_metrics(np.repeat(c, 5, axis=0), c, MoGRing.std)
    assert (m["modes"], m["high_quality"]) == (8, 1.0)
    assert m["reverse_kl"] == pytest.approx(0.0, abs=1e-12)


def test_reverse_kl_is_undefined_when_no_sample_is_high_quality():
    m = mode_metrics(np.zeros((10, 2)), MoGRing.centers(), MoGRing.std)  # the ring's centre
    assert m["modes"] == 0 and m["high_quality"] == 0 and math.isnan(m["reverse_kl"])


def test_modes_captured_is_the_primary_metric_with_a_target_of_all_modes_on_the_ring():
    assert MoGRing.primary_metric == MoGGrid.primary_metric == "modes"
    assert MoGRing.metrics["modes"].higher_is_better
    assert MoGRing.target == 8 and MoGGrid.target == 24
    assert "fd" in MoGRing.metrics and not MoGRing.metrics["fd"].higher_is_better


# -- published players ----------------------------------------------------------------------


def test_pack_concatenates_row_i_of_each_slice():
    x = torch.arange(12.0).reshape(6, 2)  # points p0..p5; m = 3 slices of 2
    packed = nets.pack(x, 3)
    np.testing.assert_array_equal(packed, [[0, 1, 4, 5, 8, 9], [2, 3, 6, 7, 10, 11]])
    assert nets.pack(x, 1) is x


def test_maxout_equals_a_plain_loop_over_groups_of_pieces():
    torch.manual_seed(0)
    layer = nets.Maxout(3, 4, 5)
    x = torch.randn(7, 3)
    h = layer.linear(x)
    want = torch.stack([h[:, 5 * j : 5 * j + 5].max(1).values for j in range(4)], 1)
    torch.testing.assert_close(layer(x), want, rtol=0, atol=0)


def test_pacgan_players_match_the_published_architecture_and_init():
    torch.manual_seed(0)
    G, D = nets.pacgan_players(1)
    linears = [m for m in G.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features, m.bias is not None) for m in linears] == [
        (2, 400, False), (400, 400, False), (400, 400, False), (400, 400, False), (400, 2, True),
    ]  # fmt: skip
    norms = [m for m in G.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(norms) == 4 and all((n.eps, n.momentum) == (1e-4, 0.05) for n in norms)
    assert sum(p.numel() for p in G.parameters()) == 800 + 3 * 160_000 + 4 * 800 + 802
    maxouts = [m for m in D.modules() if isinstance(m, nets.Maxout)]
    assert [(m.linear.in_features, m.out_features, m.pieces) for m in maxouts] == [
        (2, 200, 5), (200, 200, 5), (200, 200, 5),
    ]  # fmt: skip
    assert sum(p.numel() for p in D.parameters()) == 3000 + 2 * 201_000 + 201
    weights = torch.cat([m.weight.flatten() for m in D.modules() if isinstance(m, nn.Linear)])
    assert weights.std().item() == pytest.approx(0.02, rel=0.01)
    biases = [m.bias for m in [*G.modules(), *D.modules()] if isinstance(m, nn.Linear)]
    assert all((b is None or (b == 0).all()) for b in biases)


def test_packed_discriminators_read_m_points_per_example():
    for players in (nets.pacgan_players, nets.unrolled_players):
        _, D = players(3)
        assert D(torch.zeros(12, 2)).shape == (4, 1)


def test_pacgan_generator_normalises_each_pack_slot_separately_in_training():
    torch.manual_seed(0)
    G, _ = nets.pacgan_players(2)
    G.train()
    z = torch.randn(20, 2)
    twin = nets.pacgan_players(1)[0]
    twin.load_state_dict(G.net.state_dict())
    twin.train()
    torch.testing.assert_close(G(z), torch.cat([twin(z[:10]), twin(z[10:])]))
    G.eval()  # inference uses the population statistics: the whole batch goes through at once
    torch.testing.assert_close(G(z), G.net(z))


def test_unrolled_players_are_the_demo_tanh_mlps_with_orthogonal_init():
    torch.manual_seed(0)
    G, D = nets.unrolled_players(1)
    assert [m.in_features for m in G.modules() if isinstance(m, nn.Linear)] == [256, 128, 128]
    assert [m.out_features for m in D.modules() if isinstance(m, nn.Linear)] == [128, 128, 1]
    assert any(isinstance(m, nn.Tanh) for m in G.modules())
    w = [m.weight for m in D.modules() if isinstance(m, nn.Linear)][1]  # 128 x 128
    torch.testing.assert_close(w @ w.T, 1.4**2 * torch.eye(128), atol=1e-4, rtol=0)


# -- options and end to end ---------------------------------------------------------------------


def test_published_archs_fix_their_noise_and_evaluation_sizes():
    pac = MoGRing.parse_options(arch="pacgan")
    unrolled = MoGRing.parse_options(arch="unrolled")
    default = MoGRing.parse_options()
    assert (pac.z_dim, unrolled.z_dim, default.z_dim, default.hidden) == (2, 256, 16, 128)
    sizes = [MoGRing(o, torch.device("cpu")).eval_samples for o in (pac, unrolled, default)]
    assert sizes == [2500, 5120, 2500]


@pytest.mark.parametrize(
    ("cls", "options", "match"),
    [
        (MoGRing, {"arch": "dcgan"}, "arch must be one of default, pacgan, unrolled"),
        (MoGRing, {"arch": "pacgan", "hidden": 64}, "fixes the players"),
        (MoGRing, {"arch": "unrolled", "z_dim": 16}, "fixes the players"),
        (MoGRing, {"packing": 0}, "packing must be an integer >= 1"),
        (MoGGrid, {"arch": "unrolled"}, "no published protocol"),
    ],
)
def test_bad_arch_options_are_one_line_config_errors(cls, options, match):
    with pytest.raises(ConfigError, match=match):
        cls.parse_options(**options)


@pytest.mark.parametrize(
    ("arch", "packing", "batch"), [("pacgan", 2, 8), ("unrolled", 1, 16), ("default", 3, 8)]
)
def test_every_arch_trains_and_scores_end_to_end(arch, packing, batch):
    workload = MoGRing(MoGRing.parse_options(arch=arch, packing=packing), torch.device("cpu"))
    b = workload.sample(batch, torch.Generator().manual_seed(0))
    assert b.real.shape == (batch * packing, 2) and b.z.shape[0] == batch * packing
    r = ogan.train("mog-ring", {"name": "adam", "lr": 1e-3}, steps=3, eval_every=3, seed=0,
                   device="cpu", batch_size=batch, scheme="simultaneous", arch=arch,
                   packing=packing)  # fmt: skip
    assert r.summary["diverged_at"] is None
    assert set(r.history.columns) >= {"modes", "high_quality", "reverse_kl", "fd"}
    assert r.summary["metric_info"]["eval_samples"] == workload.eval_samples


# -- the published sweep files --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sweep", "workload", "steps", "batch", "lr", "lr_ratio", "betas", "packings"),
    [
        ("pacgan-ring", "mog-ring", 400_000, 100, 1e-4, None, (0.8, 0.999), {1, 2, 3, 4}),
        ("pacgan-grid", "mog-grid", 400_000, 100, 1e-4, None, (0.8, 0.999), {1, 2, 3, 4}),
        ("pacgan-ring-short", "mog-ring", 1000, 100, 1e-4, None, (0.8, 0.999), {1}),
        ("pacgan-grid-short", "mog-grid", 1000, 100, 1e-4, None, (0.8, 0.999), {1}),
        ("unrolled-ring", "mog-ring", 25_000, 512, 1e-3, 0.1, (0.5, 0.999), {None}),
        ("unrolled-ring-short", "mog-ring", 5000, 512, 1e-3, 0.1, (0.5, 0.999), {None}),
    ],
)
def test_published_sweep_files_hold_the_published_settings(
    sweep, workload, steps, batch, lr, lr_ratio, betas, packings
):
    from bench.config import load_sweep

    specs = load_sweep(sweep, device="cpu").specs
    assert {s.workload for s in specs} == {workload}
    assert {s.steps for s in specs} == {steps} and sorted({s.seed for s in specs}) == [*range(10)]
    options = [dict(s.workload_options) for s in specs]
    assert {o["batch_size"] for o in options} == {batch}
    assert {o["scheme"] for o in options} == {"simultaneous"}
    assert {o.get("packing") for o in options} == packings
    assert {o["arch"] for o in options} == {sweep.split("-")[0]}
    for s in specs:
        opt = dict(s.optimizer)
        assert (opt["lr"], opt.get("lr_ratio"), tuple(opt["betas"])) == (lr, lr_ratio, betas)
    short = "short" in sweep
    assert short == ("SHORTENED" in load_sweep(sweep, device="cpu").description)


def test_the_unrolled_protocols_other_samples_share_its_game_and_draw_disjoint_seeds():
    """unrolled-ring-counter (seeds 0-9 again), unrolled-ring-gpu (256 seeds), unrolled-ring-800
    and -5k (its game at 800 and 5,000 steps) and -25k-cpu (full length, 32 seeds) differ from
    unrolled-ring only in streams, seeds, length and (800, 5k, 25k-cpu) the optimizers kept; seeds
    fixed before any run, the new samples disjoint from each other and from the CPU studies'
    0-9. -25k-cpu-baselines and -rest are more arms on -25k-cpu's seeds, their Adam runs the same
    runs; -25k-cpu-all is those three sweeps' runs together, nothing of its own."""
    from bench.config import load_sweep

    def game(sweep):
        specs = load_sweep(sweep, device="cpu").specs
        workload = {tuple((k, v) for k, v in s.workload_options if k != "streams") for s in specs}
        return workload, {s.label: s.optimizer for s in specs}, {s.seed for s in specs}, specs

    base_workload, base_optimizers, base_seeds, _ = game("unrolled-ring")
    seeds, adam_runs, run_ids = {}, {}, {}
    for sweep, steps, labels in [
        ("unrolled-ring-counter", 25_000, set(base_optimizers)),
        ("unrolled-ring-gpu", 25_000, set(base_optimizers)),
        ("unrolled-ring-800", 800, {"adam", "adam+ortho"}),
        ("unrolled-ring-5k", 5_000, {"adam", "adam+ortho", "adam+surgery"}),
        ("unrolled-ring-25k-cpu", 25_000, {"adam", "adam+ortho"}),
        ("unrolled-ring-25k-cpu-baselines", 25_000, {"adam", "optimistic-adam", "lookahead(adam)"}),
        ("unrolled-ring-25k-cpu-rest", 25_000, {"adam", "adam+surgery", "extra-adam"}),
        ("unrolled-ring-25k-cpu-all", 25_000, set(base_optimizers)),
    ]:
        workload, optimizers, seeds[sweep], specs = game(sweep)
        assert workload == base_workload
        assert optimizers == {k: base_optimizers[k] for k in labels}
        assert {dict(s.workload_options)["streams"] for s in specs} == {"counter"}
        assert {s.steps for s in specs} == {steps}
        # seed-matched: every optimizer has every seed
        assert len(specs) == len(labels) * len(seeds[sweep])
        adam_runs[sweep] = {s.run_id for s in specs if s.label == "adam"}
        run_ids[sweep] = {s.run_id for s in specs}
    assert seeds["unrolled-ring-counter"] == base_seeds == set(range(10))
    assert seeds["unrolled-ring-gpu"] == set(range(1000, 1256))
    assert seeds["unrolled-ring-800"] == set(range(2000, 2256))
    assert seeds["unrolled-ring-5k"] == set(range(3000, 3080))
    assert seeds["unrolled-ring-25k-cpu"] == set(range(4000, 4032))
    # -baselines and -rest add arms to -25k-cpu's sample: its seeds, and Adam's runs are those runs
    adam = adam_runs["unrolled-ring-25k-cpu"]
    assert len(adam) == 32
    parts = [f"unrolled-ring-25k-cpu{s}" for s in ("", "-baselines", "-rest")]
    for more in [*parts[1:], "unrolled-ring-25k-cpu-all"]:
        assert seeds[more] == seeds["unrolled-ring-25k-cpu"]
        assert adam_runs[more] == adam
    # -all runs nothing: its 192 runs are exactly the three sweeps' (Adam's 32 shared by all three)
    assert run_ids["unrolled-ring-25k-cpu-all"] == set().union(*(run_ids[p] for p in parts))
    assert len(run_ids["unrolled-ring-25k-cpu-all"]) == 6 * 32
    same_sample = {
        "unrolled-ring-counter",
        "unrolled-ring-25k-cpu-baselines",
        "unrolled-ring-25k-cpu-rest",
        "unrolled-ring-25k-cpu-all",
    }
    new = [s for name, s in seeds.items() if name not in same_sample]
    assert sum(map(len, new)) == len(set().union(*new, base_seeds)) - len(base_seeds)
