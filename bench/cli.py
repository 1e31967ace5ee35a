"""The command line: ``python -m bench {run,list,report,perf}``.

Each subcommand is a thin parser in front of a plain function. Known errors (bad input) become
one line on stderr and exit code 2, here and nowhere else; Ctrl-C becomes exit code 130.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import BenchError
from bench.population import DEFAULT_SIZE
from ogan.errors import OganError

if TYPE_CHECKING:
    import pandas as pd

EXIT_OK = 0
EXIT_FAILED_RUNS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of our output went away (`| head`)

KINDS = ("workload", "optimizer")
DEFAULT_OUT = "results"
DEFAULT_REPORT_DIR = "results/default"


REPEAT_S = 1.0
"""SIGINTs this soon after the first are the same interrupt (:func:`drop_repeated_interrupts`)."""


def drop_repeated_interrupts() -> None:
    """Make one interrupt of several SIGINTs sent together: the first raises KeyboardInterrupt,
    those within :data:`REPEAT_S` of it are dropped (a later one raises again).

    ``timeout`` (GNU coreutils), as the GPU session's study parts use it, and job runners like
    it send SIGINT to the command and then to its process group, so ``bench run`` gets it twice,
    a few microseconds or milliseconds apart. The second then lands in the code that stores the
    finished runs and stops the workers, or in the interpreter's shutdown: measured on this
    project's 2-core VM, tracebacks ("Exception ignored in threading._shutdown") and deaths by
    the signal itself. Once, in a fresh clone's CI, a study part under ``timeout`` did not exit
    within its 30 s grace and was killed; that did not reproduce, so this is the likeliest path,
    not a proven one. Python's own handler only is replaced (a process that ignores
    SIGINT, as a sweep's workers do, or that has a handler of its own keeps it), in the main
    thread, for the rest of the process: ``python -m bench`` calls this, :func:`main` does not.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return
    last = -math.inf  # when the last interrupt was raised

    def interrupt(signum: int, frame: object) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < REPEAT_S:
            return
        last = now
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``bench`` command; returns the process exit code."""
    parser = _parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if args.command == "perf":
            args.args = [*extra, *args.args]
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # argparse reports usage errors (exit 2) and --help (exit 0)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    command: Callable[[argparse.Namespace], int] = args.func
    try:
        return command(args)
    except OganError as exc:
        print(f"bench {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"bench {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Python would fail again flushing stdout at exit: point it at /dev/null instead.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _part(text: str) -> tuple[int, int]:
    """``I/N`` with 1 <= I <= N (argparse type)."""
    head, sep, tail = text.partition("/")
    if sep and head.strip().isdigit() and tail.strip().isdigit():
        i, n = int(head), int(tail)
        if 1 <= i <= n:
            return i, n
    raise argparse.ArgumentTypeError(f"expected I/N with 1 <= I <= N, e.g. 2/6; got {text!r}")


def cmd_run(args: argparse.Namespace) -> int:
    from ogan._allocator import check_setting

    check_setting()  # the workers read it: a typo would only show as every population failing
    if args.dry_run and _list_imports(args.config):
        return EXIT_OK
    from bench.runner import run_sweep

    options = {
        "out": args.out,
        "jobs": args.jobs,
        "scheduler": args.scheduler,
        "force": args.force,
        "device": args.device,
        "population": args.population,
    }
    if args.max_seeds is not None and not args.until_decided:
        raise BenchError("--max-seeds goes with --until-decided")
    if args.part is not None:
        if args.until_decided:
            raise BenchError("--part cannot go with --until-decided: its rounds span the sweep")
        options["part"] = args.part
    if args.seed_part is not None:
        if args.until_decided:
            raise BenchError(
                "--seed-part cannot go with --until-decided: its rounds choose the seeds"
            )
        options["seed_part"] = args.seed_part
    if args.until_decided:
        if args.dry_run:
            raise BenchError("--until-decided cannot be a dry run: its rounds depend on results")
        from bench.sequential import run_until_decided

        report = run_until_decided(args.config, max_seeds=args.max_seeds, **options)
    else:
        report = run_sweep(args.config, dry_run=args.dry_run, **options)
    if report.failed:
        print(failure_advice(report.failed, report.transient), file=sys.stderr)
        return EXIT_FAILED_RUNS
    return EXIT_OK


def failure_advice(failed: int, transient: int) -> str:
    """What to do about failed runs: retrying helps only those whose error may not repeat."""
    deterministic = failed - transient
    parts = []
    if deterministic:
        parts.append(
            f"{deterministic} run(s) failed with an error that will repeat (see above; the "
            "report lists each missing run's reason): fix the spec or the code it names"
        )
    if transient:
        parts.append(
            f"{transient} run(s) failed with an error that may not repeat (memory, disk, "
            "connection): run the same command again to retry them"
        )
    return "bench run: " + "; ".join(parts)


def _default(value: object) -> str:
    """A default as ``bench list`` shows it: a function by its name, not its address."""
    if callable(value) and hasattr(value, "__qualname__"):
        return f"<{getattr(value, '__module__', '?')}.{value.__qualname__}>"
    return repr(value)


def _list_imports(config: str | None) -> bool:
    """``--dry-run`` of a sweep that names code from outside ogan: list it, import nothing."""
    from bench.config import parse_toml, read_sweep
    from bench.imports import plan, sweep_imports

    text, origin, _ = read_sweep(config)
    found = sweep_imports(parse_toml(text, origin))
    if found:
        print(plan(origin, found))
    return bool(found)


def cmd_list(args: argparse.Namespace) -> int:
    print("\n".join(describe(name) for name in args.names) if args.names else listing())
    return EXIT_OK


def describe(name: str) -> str:
    """One name in full: what it is, where its code comes from, every key it takes."""
    from ogan.optim import ORTHO_KEYS
    from ogan.registry import resolve_name

    errors: list[str] = []
    for kind in KINDS:
        try:
            entry = resolve_name(kind, name)
            break
        except OganError as exc:
            errors.append(str(exc))
    else:
        if errors[0] == errors[1]:  # e.g. the module does not import
            raise OganError(errors[0])
        raise OganError(f"{errors[0]}; and as an optimizer: {errors[1]}")
    keys = [f"{k}={_default(entry.defaults[k])}" if k in entry.defaults else k for k in entry.keys]
    what = "options" if entry.kind == "workload" else "hyperparameters"
    lines = [
        f"{name}: {entry.kind}, {entry.origin.describe()}",
        f"  {entry.description}",
        f"  {what}: {', '.join(keys) or 'none'}",
    ]
    if entry.sequence_keys:
        lines.append(f"  sequence-valued: {', '.join(sorted(entry.sequence_keys))}")
    if entry.kind == "optimizer":
        if entry.impl_keys:
            lines.append(
                f"  implementation (not part of the run id): {', '.join(entry.impl_keys)}"
            )
        opt_in = "; a key it reads from **kwargs: extra_keys = [...]" if entry.open_keys else ""
        game_keys = "ortho_players (g, d or both), lr_ratio, surgery"
        lines.append(f"  with any optimizer: {', '.join(ORTHO_KEYS)}, {game_keys}{opt_in}")
        if entry.wraps is not None:
            key, default = entry.wraps
            lines.append(
                f"  wraps the optimizer named by {key} (default {default!r}) and takes its "
                "hyperparameters too"
            )
        return "\n".join(lines)
    for metric, m in entry.obj.metrics.items():
        tag = ", primary" if metric == entry.obj.primary_metric else ""
        better = "higher" if m.higher_is_better else "lower"
        lines.append(f"  metric {metric}: {m.description} ({better} is better{tag})")
    return "\n".join(lines)


def listing() -> str:
    """Workloads, optimizers and metrics, one line each with its description; names that
    installed packages register (entry points) say which package."""
    from ogan.registry import names, resolve_name

    found = {kind: {n: resolve_name(kind, n) for n in names(kind)} for kind in KINDS}
    width = max(len(n) for entries in found.values() for n in entries) + 2
    lines = []
    for kind, entries in found.items():
        lines.append(f"{kind}s:")
        for name, entry in entries.items():
            where = "" if entry.origin.via == "registered" else f"  [{entry.origin.describe()}]"
            lines.append(f"  {name:<{width}}{entry.description}{where}")
    lines.append("metrics:")
    metrics = [
        (f"{name}.{key}", m, key == entry.obj.primary_metric)
        for name, entry in found["workload"].items()
        for key, m in entry.obj.metrics.items()
    ]
    mwidth = max(len(key) for key, _, _ in metrics) + 2
    for key, m, primary in metrics:
        better = "higher" if m.higher_is_better else "lower"
        tag = ", primary" if primary else ""
        lines.append(f"  {key:<{mwidth}}{m.description} ({better} is better{tag})")
    lines.append(
        "any other name: an import path 'package.module:Attribute' (a Workload subclass; a "
        "torch.optim.Optimizer subclass or factory)"
    )
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report import build_report

    print(build_report(Path(args.dir)))
    return EXIT_OK


def cmd_verdicts(args: argparse.Namespace) -> int:
    from bench.report.stability import compare_verdicts, summary

    table = compare_verdicts(args.a, args.b)
    print(summary(table))
    return EXIT_FAILED_RUNS if table["flipped"].any() else EXIT_OK


def cmd_agree(args: argparse.Namespace) -> int:
    from bench.report.agreement import DIFFER, agreement, runs_of, summary

    table = agreement(runs_of(args.a), runs_of(args.b))
    if args.csv is not None:
        _write_csv(table, args.csv)
    print(summary(table, args.a, args.b))
    return EXIT_FAILED_RUNS if (table["verdict"] == DIFFER).any() else EXIT_OK


def _write_csv(table: pd.DataFrame, path: str) -> None:
    from ogan.files import atomic_open

    try:
        with atomic_open(path) as f:
            table.to_csv(f, index=False)
    except OSError as exc:
        raise BenchError(f"cannot write {path}: {exc.strerror}") from None


def cmd_pool(args: argparse.Namespace) -> int:
    from bench.report.agreement import runs_of
    from bench.report.pooling import pool, summary

    if len(set(args.samples)) != len(args.samples):
        raise BenchError("a sample is given twice; pool independent samples, each once")
    table = pool({s: runs_of(s) for s in args.samples}, base=args.base, metric=args.metric)
    if args.csv is not None:
        _write_csv(table, args.csv)
    print(summary(table))
    return EXIT_OK


def cmd_forest(args: argparse.Namespace) -> int:
    from bench.report.across import draw, rows, summary

    table = rows(args.reports, base=args.base or "adam", arms=args.arm, statistic=args.statistic,
                 by=args.by, equal_cost=args.equal_cost)  # fmt: skip
    draw(table, args.out, by=args.by)  # checks --out before anything is written
    if args.csv is not None:
        _write_csv(table.drop(columns="path"), args.csv)
    print(summary(table))
    print(f"wrote {args.out}")
    return EXIT_OK


def cmd_perf(args: argparse.Namespace) -> int:
    from bench import perf

    return perf.main(args.args)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmark GAN optimizers: run sweeps, report them."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run (or resume) a sweep",
        description="Run a TOML sweep in parallel; finished runs are kept and skipped on re-runs.",
    )
    run.add_argument(
        "config",
        nargs="?",
        help="a sweep TOML file, or an embedded sweep name: default (the default), quick",
    )
    run.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help=f"results root; runs go to OUT/<sweep name>/ (default: {DEFAULT_OUT})",
    )
    run.add_argument(
        "--jobs", type=_positive_int, help="parallel workers (default: CPU cores, or GPUs)"
    )
    run.add_argument("--scheduler", metavar="ADDRESS", help="run on this Dask scheduler")
    run.add_argument("--force", action="store_true", help="recompute finished runs")
    run.add_argument(
        "--dry-run", action="store_true", help="check the sweep and list what would run"
    )
    run.add_argument(
        "--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu"
    )
    run.add_argument(
        "--population",
        type=_positive_int,
        metavar="N",
        help="train runs that differ only by seed together, at most N per population "
        f"(default: {DEFAULT_SIZE['cpu']} on CPU, {DEFAULT_SIZE['cuda']} on CUDA; 1: one run "
        "per process)",
    )
    run.add_argument(
        "--until-decided",
        action="store_true",
        help="then add seeds in rounds to the paired comparisons still undecided "
        "(group-sequential design, valid under this optional stopping; see bench.sequential)",
    )
    run.add_argument(
        "--max-seeds",
        type=_positive_int,
        metavar="N",
        help="with --until-decided: at most N seeds per variant, selection seeds included "
        "(default: 20, or the started design's)",
    )
    run.add_argument(
        "--part",
        type=_part,
        metavar="I/N",
        help="run only the I-th of N parts of the sweep: its configurations (runs that differ "
        "only by seed) in N consecutive blocks, each with all its seeds; for splitting a long "
        "sweep over separate commands or machines (the union of the parts is the sweep)",
    )
    run.add_argument(
        "--seed-part",
        type=_part,
        metavar="I/N",
        help="run only the I-th of N consecutive blocks of the sweep's seeds, with every "
        "configuration (or --part's): run block by block, every optimizer has the same seeds "
        "whenever the run stops (the union of the blocks is the sweep)",
    )
    run.set_defaults(func=cmd_run)

    lst = sub.add_parser(
        "list",
        help="list workloads, optimizers and metrics",
        description="List every workload, optimizer and metric; or describe the given names "
        "(import paths 'package.module:Attribute' too), with every key they take.",
    )
    lst.add_argument("names", nargs="*", metavar="NAME", help="describe these names in full")
    lst.set_defaults(func=cmd_list)

    report = sub.add_parser("report", help="render figures and tables of finished runs")
    report.add_argument(
        "dir", nargs="?", default=DEFAULT_REPORT_DIR, help=f"default: {DEFAULT_REPORT_DIR}"
    )
    report.set_defaults(func=cmd_report)

    verdicts = sub.add_parser(
        "verdicts",
        help="compare the verdicts of two reports of one sweep (exit 1 if any flipped)",
        description="Compare the verdicts of two reports of the same sweep and seeds (e.g. "
        "run on two machines, or built before and after a change of rules): which differ, which "
        "one side lacks, and whether any went from better to worse or back (exit code 1). A "
        "side is a report directory (its comparisons.csv, or an older report's paired.csv and "
        "claims.csv) or a results directory (analysed afresh, as bench.analyse does).",
    )
    verdicts.add_argument("a", metavar="A", help="a report directory (…/report) or results")
    verdicts.add_argument("b", metavar="B", help="another")
    verdicts.set_defaults(func=cmd_verdicts)

    agree = sub.add_parser(
        "agree",
        help="do two samples of one protocol agree? (per optimizer and final metric; exit 1 "
        "if any differ)",
        description="Compare, per workload × optimizer × lr on both sides, the distribution of "
        "every final metric: difference of means with its Welch interval, a permutation test, "
        "Holm over the family (e.g. the same protocol on the CPU and on a GPU).",
    )
    agree.add_argument("a", metavar="A", help="a report directory (its runs.csv) or results")
    agree.add_argument("b", metavar="B", help="another")
    agree.add_argument("--csv", metavar="FILE", help="also write the table to FILE")
    agree.set_defaults(func=cmd_agree)

    pool = sub.add_parser(
        "pool",
        help="one paired estimate over independent samples of one protocol (no verdict)",
        description="Pool the seed-matched differences (arm − base) of two or more independent "
        "samples of one protocol (the same sweep on disjoint seeds): per sample and over all "
        "pairs, the mean difference with its t interval, paired t and Wilcoxon p, and a "
        "permutation test of whether the samples differ. An estimate, not a verdict (see "
        "bench.report.pooling).",
    )
    pool.add_argument("samples", metavar="SAMPLE", nargs="+",
                      help="a report directory (its runs.csv) or a sweep's results directory")
    pool.add_argument("--base", default="adam", help="the arm every other is compared with "
                      "(an optimizer label of the reports; default adam)")
    pool.add_argument("--metric", help="the final metric (default: each workload's target "
                      "metric, e.g. modes)")
    pool.add_argument("--csv", metavar="FILE", help="also write the table to FILE")
    pool.set_defaults(func=cmd_pool)

    forest = sub.add_parser(
        "forest",
        help="one comparison across studies, on one page (a forest plot of their own verdicts)",
        description="Set one comparison (ARM vs BASE on one statistic) from several reports "
        "side by side: estimate, 95%% interval, the declared margin, and each report's own "
        "verdict with its family, correction, family size and pairs (e.g. a game at 800 and "
        "25,000 steps, or the CPU's sample beside the GPU's). Nothing is tested again or "
        "pooled. A study is labelled by its sweep (results/NAME/report) or LABEL=PATH.",
    )
    forest.add_argument("reports", metavar="REPORT", nargs="+",
                        help="a report directory (its comparisons.csv), a results directory, "
                        "or LABEL=either")
    forest.add_argument("--out", required=True, metavar="FILE.png", help="the figure to write")
    forest.add_argument("--base", action="append", metavar="LABEL",
                        help="the arm compared with (default adam; repeatable: each study's "
                        "rows against any of them, e.g. one arm against the comparator each "
                        "sample declared)")  # fmt: skip
    forest.add_argument("--arm", action="append", metavar="LABEL",
                        help="an arm to show (repeatable; default: every arm against BASE)")
    forest.add_argument("--statistic", help="the statistic (default: each report's primary, "
                        "e.g. modes), e.g. high_quality, reverse_kl, fd, growth_g")
    forest.add_argument("--by", choices=("study", "arm"), default="study",
                        help="rows together by study (default) or by arm, the studies "
                        "alternating within each")  # fmt: skip
    forest.add_argument("--equal-cost", action="store_true",
                        help="each pair at equal cost: its row at equal gradient evaluations "
                        "where the study made one, else at equal steps if its arms spend the "
                        "same gradient evaluations a step (an error otherwise)")  # fmt: skip
    forest.add_argument("--csv", metavar="FILE", help="also write the table to FILE")
    forest.set_defaults(func=cmd_forest)

    perf = sub.add_parser(
        "perf", help="performance benchmarks (arguments go to bench.perf)", add_help=False
    )
    perf.add_argument("args", nargs=argparse.REMAINDER)
    perf.set_defaults(func=cmd_perf)
    return parser
