"""One lease of a GPU, spent in order of value under a deadline: ``scripts/gpu-session.sh lease``.

A lease is 15 minutes of device time, the machine's start and every idle wait included, and at
most 10 minutes a command: too little for the separate commands (check, pilot, one study part
per optimizer) each with its own start-up. This runs them as one command that stops itself
before ``SECONDS`` and can be run again (on the same warm machine it resumes; on a fresh one
the study resumes from what was brought back here and carried, see gpu-session.sh)::

    python scripts/gpu_lease.py SECONDS [STEP ...]      # default: gate study seeds check

gate    the study's own configurations (its workload, optimizer specs and streams, 4 of its
        seeds), 20 steps replayed as a CUDA graph, each held to one eager step from the same
        state and the state's counts to the eager run's (:func:`bench.perf.cuda.replay_sweep`).
        If a graphed configuration differs, ``study`` and ``seeds`` are skipped and the lease
        fails: their graphs would not be the maths. A configuration whose capture fails trains
        eagerly (many times slower) and runs last.
study   ``unrolled-ring-gpu`` in seed blocks (``--seed-part r/R``, a population per optimizer
        and block): every optimizer gets a block's seeds before the next block starts, so a
        lease that ends early leaves seed-matched optimizers. Each block's finished runs are
        packed into ``$OUT/unrolled-ring-gpu-<r>.tar.gz``.
seeds   ``unrolled-ring-counter`` (seeds 0-9, the CPU/GPU agreement check), packed into
        ``$OUT/unrolled-ring-counter.tar.gz``.
check   ``python -m bench perf --device cuda``: ``$OUT/<gpu>-cuda.json`` (named after the GPU's
        model: ``h100-cuda.json`` on an H100, ``h200-cuda.json`` on an H200), rewritten after
        each of its parts.

A step that reaches the deadline is stopped with SIGINT (``bench run`` stores its finished runs
first; the population in flight keeps its last checkpoint on the machine) and the steps after
it are skipped. ``$OUT/lease.json`` says what each step did and how long it took, and is
rewritten after each step. Environment: OUT (set by the device tool), PYTHON, DEVICE, SWEEPS,
RESULTS (gpu-session.sh sets them), LEASE_BLOCK (seeds per study block, default 128).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("gate", "study", "seeds", "check")
RESERVE_S = 20  # kept back from a step's time: packing its runs and writing lease.json
MIN_STEP_S = 30  # a step with less left is skipped, not started
GRACE_S = 30  # after SIGINT: time to store finished runs before SIGKILL


def _stoppable() -> None:
    """In a step's process before it execs: SIGINT back to its default action. A lease started
    in the background (``cmd &`` in a non-interactive shell, as a remote runner may start it)
    ignores SIGINT, its children inherit that, and Python then installs no KeyboardInterrupt
    handler: the stop at the deadline would do nothing and end in SIGKILL after GRACE_S."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Lease:
    def __init__(self, seconds: float, steps: list[str]) -> None:
        self.t0 = time.monotonic()
        self.deadline = self.t0 + seconds
        self.steps = steps
        self.out = Path(os.environ["OUT"])
        self.py = os.environ.get("PYTHON", sys.executable)
        self.device = os.environ.get("DEVICE", "cuda")
        self.sweeps = Path(os.environ.get("SWEEPS", ROOT / "bench" / "sweeps"))
        self.results = Path(os.environ.get("RESULTS", ROOT / "results"))
        self.block = int(os.environ.get("LEASE_BLOCK", 128))
        self.record: dict = {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": seconds,
            "device": self.device,
            "steps": [],
        }
        self.gate_passed: bool | None = None
        self.failures: list[str] = []  # commands that failed (not stopped at the deadline)
        self.modes: dict[str, str] = {}  # the gate's mode of each configuration, by label

    # -- bookkeeping --------------------------------------------------------------------------

    def left(self) -> float:
        return self.deadline - time.monotonic() - RESERVE_S

    def save(self) -> None:
        self.record["elapsed_s"] = round(time.monotonic() - self.t0, 1)
        tmp = self.out / "lease.json.tmp"
        tmp.write_text(json.dumps(self.record, indent=1, default=str))
        tmp.replace(self.out / "lease.json")

    def say(self, text: str) -> None:
        print(f"[lease {time.monotonic() - self.t0:6.0f} s] {text}", flush=True)

    def run(self, cmd: list[str], seconds: float) -> tuple[int, bool]:
        """(exit code, stopped at the deadline): ``cmd`` under a time limit, stopped with SIGINT
        (then SIGKILL after :data:`GRACE_S`) when it runs past it."""
        self.say(" ".join(cmd))
        proc = subprocess.Popen(cmd, cwd=ROOT, preexec_fn=_stoppable)
        try:
            return proc.wait(timeout=max(seconds, 1)), False
        except subprocess.TimeoutExpired:
            self.say(f"deadline: stopping it (SIGINT, {GRACE_S} s to store what finished)")
            proc.send_signal(signal.SIGINT)
            try:
                return proc.wait(timeout=GRACE_S), True
            except subprocess.TimeoutExpired:
                proc.kill()
                return proc.wait(), True

    # -- the steps ----------------------------------------------------------------------------

    def gate(self) -> dict:
        """Replay against eager for the study's configurations; cached on the machine for the
        same code, so a second command of the lease does not pay for it again.

        The gate fails where a graphed configuration's replay differs from eager (wrong maths).
        A configuration whose capture fails trains eagerly in the study (the loop falls back,
        ``summary["execution"]`` says why), much slower: the study runs it last."""
        from bench.config import load_sweep
        from bench.perf.cuda import replay_passed, replay_sweep

        study = self.sweeps / "unrolled-ring-gpu.toml"
        code = hashlib.sha256(study.read_bytes())
        for path in sorted([*ROOT.glob("ogan/**/*.py"), *ROOT.glob("bench/**/*.py")]):
            code.update(path.read_bytes())
        cache = self.results / "lease-gate.json"
        cached = json.loads(cache.read_text(encoding="utf-8")) if cache.is_file() else {}
        if cached.get("code") == code.hexdigest():
            result = {**cached, "cached": True}
        else:
            result = replay_sweep(load_sweep(study, device=self.device))
            result["code"] = code.hexdigest()
            _release_device_memory()  # the study's own processes need the device next
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(result, indent=1, default=str))
        self.modes = {row["optimizer"]: row["mode"] for row in result["cases"]}
        self.gate_passed = all(replay_passed(row)
                               for row in result["cases"] if row["mode"] == "graph")  # fmt: skip
        result["gate_passed"] = self.gate_passed
        for row in result["cases"]:
            errors = {k: row[k] for k in row if k.endswith(("_error", "_differs"))}
            self.say(f"gate {row['optimizer']}: {row['mode']} {errors or row['reason']}")
        return result

    def _bench_run(self, sweep: str, extra: list[str], population: int) -> dict:
        cmd = [self.py, "-m", "bench", "run", str(self.sweeps / f"{sweep}.toml"), "--device",
               self.device, "--population", str(population), "--out", str(self.results),
               *extra]  # fmt: skip
        return self._timed(cmd)

    def _timed(self, cmd: list[str]) -> dict:
        t0 = time.monotonic()
        rc, stopped = self.run(cmd, self.left())
        if rc != 0 and not stopped:
            self.failures.append(" ".join(cmd))
        return {"rc": rc, "stopped_at_deadline": stopped,
                "device_s": round(time.monotonic() - t0, 1)}  # fmt: skip

    def study(self) -> dict:
        from bench import store
        from bench.config import load_sweep
        from bench.population import optimizer_key, part, seed_part

        sweep = load_sweep(self.sweeps / "unrolled-ring-gpu.toml", device=self.device)
        n_seeds = len({s.seed for s in sweep.specs})
        blocks = -(-n_seeds // self.block)
        labels = [key.label for key in dict.fromkeys(optimizer_key(s) for s in sweep.specs)]
        out: dict = {"blocks": []}
        for r in range(1, blocks + 1):
            specs = seed_part(sweep.specs, r, blocks)
            ids = {s.run_id for s in specs}
            seeds = list(dict.fromkeys(s.seed for s in specs))
            row = {"block": r, "of": blocks, "seeds": [seeds[0], seeds[-1]], "members": len(seeds),
                   "commands": []}  # fmt: skip
            for extra in block_commands(labels, self.modes, r, blocks):
                mine = specs
                if extra[0] == "--part":
                    mine = part(specs, *map(int, extra[1].split("/")))
                if not {s.run_id for s in mine} - store.scan(self.results / sweep.name).finished:
                    continue
                if self.left() < MIN_STEP_S:
                    row["skipped"] = f"{max(self.left(), 0):.0f} s left"
                    break
                done = self._bench_run(sweep.name, extra, population=len(seeds))
                row["commands"].append({"args": " ".join(extra), **done})
                if done["stopped_at_deadline"]:
                    row["stopped_at_deadline"] = True
                    break
            finished = ids & store.scan(self.results / sweep.name).finished
            row["runs"], row["expected"] = len(finished), len(ids)
            if finished:
                row["packed"] = self.pack(sweep.name, f"{sweep.name}-{r}", finished)
            out["blocks"].append(row)
            self.say(f"study block {r}/{blocks}: {row['runs']} of {row['expected']} runs stored")
            if row.get("stopped_at_deadline") or row.get("skipped"):
                break
        return out

    def seeds(self) -> dict:
        from bench import store
        from bench.config import load_sweep

        sweep = load_sweep(self.sweeps / "unrolled-ring-counter.toml", device=self.device)
        ids = {s.run_id for s in sweep.specs}
        out: dict = {}
        if ids - store.scan(self.results / sweep.name).finished:
            out = self._bench_run(sweep.name, [], population=len({s.seed for s in sweep.specs}))
        finished = ids & store.scan(self.results / sweep.name).finished
        out["runs"], out["expected"] = len(finished), len(ids)
        if finished:
            out["packed"] = self.pack(sweep.name, sweep.name, finished)
        return out

    def check(self) -> dict:
        # no --name: on a GPU the file is named after its model (bench.perf.cuda.device_slug)
        cmd = [self.py, "-m", "bench", "perf", "--device", self.device, "--out", str(self.out)]
        return self._timed(cmd)

    def pack(self, sweep: str, name: str, run_ids: set[str]) -> str:
        """sweep.json and the given finished runs' files (never checkpoints) into
        ``$OUT/<name>.tar.gz``, paths relative to the results root."""
        root = self.results / sweep
        path = self.out / f"{name}.tar.gz"
        # written under another name and renamed: a command killed by the device tool's own
        # limit while packing brings back a ``.part`` file, never a truncated archive by this name
        part = self.out / f"{name}.tar.gz.part"
        with tarfile.open(part, "w:gz") as tar:
            tar.add(root / "sweep.json", f"{sweep}/sweep.json")
            for file in sorted((root / "runs").iterdir()):
                if file.name.split(".")[0] in run_ids:
                    tar.add(file, f"{sweep}/runs/{file.name}")
        part.replace(path)
        return f"{path.name}: {len(run_ids)} runs, {path.stat().st_size / 2**20:.1f} MiB"

    # -- the lease ----------------------------------------------------------------------------

    def __call__(self) -> int:
        import torch

        self.record["torch"] = torch.__version__
        if self.device == "cuda" and torch.cuda.is_available():
            self.record["gpu"] = torch.cuda.get_device_name()
        for step in self.steps:
            entry: dict = {"step": step}
            self.record["steps"].append(entry)
            t0 = time.monotonic()
            if step in ("study", "seeds") and self.gate_passed is False:
                entry["skipped"] = "the gate failed: replay differs from eager, or it raised"
            elif self.left() < MIN_STEP_S:
                entry["skipped"] = f"{max(self.left(), 0):.0f} s left"
            else:
                try:
                    entry.update(getattr(self, step)())
                except Exception as exc:  # recorded, and the lease goes on (the check helps)
                    entry["error"] = f"{type(exc).__name__}: {exc}"[:1000]
                    self.failures.append(step)
                    if step == "gate":
                        self.gate_passed = False
            entry["seconds"] = round(time.monotonic() - t0, 1)
            brief = {k: v for k, v in entry.items() if k != "cases"}
            self.say(f"{step}: {json.dumps(brief, default=str)}"[:600])
            self.save()
        return 1 if self.gate_passed is False or self.failures else 0


def _release_device_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def block_commands(
    labels: list[str], modes: dict[str, str], r: int, blocks: int
) -> list[list[str]]:
    """``bench run`` arguments for seed block ``r``: one command for every configuration, or,
    where the gate graphed some configurations and not others (a capture that failed: that one
    trains eagerly, many times slower), one command per configuration with the graphed ones
    first, so that an eager one cannot use up the lease before the others ran."""
    block = ["--seed-part", f"{r}/{blocks}"]
    graphed = [i for i, label in enumerate(labels, 1) if modes.get(label) == "graph"]
    if not graphed or len(graphed) == len(labels):
        return [block]
    rest = [i for i in range(1, len(labels) + 1) if i not in graphed]
    return [["--part", f"{i}/{len(labels)}", *block] for i in graphed + rest]


def main(argv: list[str]) -> int:
    if not argv or not argv[0].isdigit() or not set(argv[1:]) <= set(STEPS):
        print(f"usage: gpu_lease.py SECONDS [{' | '.join(STEPS)} ...]", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT))
    return Lease(float(argv[0]), argv[1:] or list(STEPS))()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
