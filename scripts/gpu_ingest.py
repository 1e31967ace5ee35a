"""Back on this machine after a lease: what the device brought back, made into the committed
report, in one command (issue 22's steps 2-3 of the README's GPU section)::

    python scripts/gpu_ingest.py <files_at> [<files_at> ...]    # one folder per lease, in order

Each folder is a lease's ``files_at`` (``scripts/gpu_lease.py`` wrote it under ``$OUT``). Every
folder and archive is checked before anything is written: a folder that is missing or holds none
of a lease's files, or an archive with a member outside its sweep's folder, is a one-line error
with exit code 2 and nothing unpacked. Then:

1. ``unrolled-ring-gpu-<r>.tar.gz`` (the study's seed blocks) are unpacked under ``results/``,
   ``unrolled-ring-counter*.tar.gz`` (seeds 0-9 on the GPU) under ``results/gpu/``, beside and
   never over the CPU's ``results/unrolled-ring-counter``; ``<gpu>-cuda.json`` (the check,
   named after the GPU's model: ``h100-cuda.json``, ``h200-cuda.json``) is copied to
   ``results/perf/`` under its own name (a later lease's over an earlier one's of that model);
2. ``python -m bench report results/unrolled-ring-gpu``;
3. its verdicts beside each CPU study's (``bench verdicts``, saved as
   ``report/verdicts-vs-<study>.txt``): which the 10-seed CPU studies already had, which are new;
4. the CPU/GPU agreement on seeds 0-9 (``bench agree``: ``report/agreement-cpu-gpu.{csv,txt}``);
5. ``report/device-time.md`` and ``device_time.csv``: every lease's steps and the study's
   commands with the device seconds each took (from the leases' ``lease.json``, copied beside
   them as ``lease-<k>.json``);
6. ``python -m bench perf --summary``: ``results/perf/<gpu>-cuda.md`` beside each check copied,
   for the README's GPU section.

A step whose inputs did not come back (no study block, no seeds, no check) is skipped with a line
saying so. Running it again over the same folders rebuilds the same files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
STUDY, SEEDS = "unrolled-ring-gpu", "unrolled-ring-counter"
CPU_STUDIES = ("unrolled-ring", "unrolled-ring-counter")  # the 10-seed CPU studies


class Refused(Exception):
    """Bad input: one line, exit code 2, nothing written."""


def _checks(folder: Path) -> list[Path]:
    """The device checks in a lease's files: ``<gpu>-cuda.json``, named after the GPU's model."""
    return sorted(p for p in folder.glob("*-cuda.json") if p.is_file())


def _archives(folder: Path) -> list[tuple[Path, str]]:
    """(archive, the folder under ``results/`` it unpacks into) for one lease's files, checked."""
    if not folder.is_dir():
        raise Refused(f"{folder}: no such folder (give each lease's files_at)")
    found = [(p, ".") for p in sorted(folder.glob(f"{STUDY}-*.tar.gz"))]
    found += [(p, "gpu") for p in sorted(folder.glob(f"{SEEDS}*.tar.gz"))]
    if not found and not (folder / "lease.json").is_file() and not _checks(folder):
        raise Refused(f"{folder}: none of a lease's files (lease.json, {STUDY}-<r>.tar.gz, "
                      f"{SEEDS}.tar.gz, <gpu>-cuda.json); is it a lease's files_at?")  # fmt: skip
    for path, _ in found:
        sweep = STUDY if path.name.startswith(f"{STUDY}-") else SEEDS
        try:
            with tarfile.open(path) as tar:
                members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise Refused(f"{path}: not a whole archive ({exc}); was the lease cut off while "
                          "packing? leave it out") from None  # fmt: skip
        bad = [m.name for m in members
               if not (m.isfile() or m.isdir()) or Path(m.name).parts[:1] != (sweep,)
               or ".." in Path(m.name).parts]  # fmt: skip
        if bad:
            raise Refused(f"{path}: member {bad[0]!r} is not a file under {sweep}/; not unpacking")
    return found


def _lease_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refused(f"{path}: not a lease record ({exc}); leave the folder out") from None
    if not isinstance(record, dict) or not isinstance(record.get("steps"), list):
        raise Refused(f"{path}: not a lease record (no list of steps); leave the folder out")
    return record


def _bench(*args: str | Path, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    """``python -m bench ARGS`` from the project root, paths under it written relative (what it
    prints is committed: no machine's absolute paths in a report)."""
    args = tuple(str(a.relative_to(ROOT)) if isinstance(a, Path) and a.is_relative_to(ROOT)
                 else str(a) for a in args)  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, text=True,
                          capture_output=True)  # fmt: skip
    if done.returncode not in ok:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"python -m bench {' '.join(args)}: exit code {done.returncode}")
    return done


def device_time(leases: list[dict]) -> pd.DataFrame:
    """One row per lease step, and per command of the study's seed blocks: device seconds."""
    rows = []
    for k, lease in enumerate(leases, 1):
        base = {"lease": k, "started": lease.get("started"), "gpu": lease.get("gpu", ""),
                "torch": lease.get("torch", "")}  # fmt: skip
        for step in lease.get("steps", []):
            outcome = ("skipped: " + step["skipped"] if "skipped" in step else
                       "error: " + step["error"] if "error" in step else
                       "failed" if step.get("passed") is False else "done")  # fmt: skip
            rows.append({**base, "step": step["step"], "block": "", "seeds": "", "runs": "",
                         "seconds": step.get("seconds"), "outcome": outcome})  # fmt: skip
            for block in step.get("blocks", []):
                for cmd in block.get("commands", []):
                    stopped = cmd.get("stopped_at_deadline")
                    rows.append({**base, "step": f"study {cmd['args']}",
                                 "block": f"{block['block']}/{block['of']}",
                                 "seeds": "{}-{}".format(*block["seeds"]),
                                 "runs": f"{block['runs']}/{block['expected']}",
                                 "seconds": cmd.get("device_s"),
                                 "outcome": "stopped at the deadline" if stopped
                                 else f"exit {cmd.get('rc')}"})  # fmt: skip
    return pd.DataFrame(rows, columns=["lease", "started", "gpu", "torch", "step", "block",
                                       "seeds", "runs", "seconds", "outcome"])  # fmt: skip


def _device_time_md(table: pd.DataFrame, leases: list[dict]) -> str:
    from bench.report.document.model import Table
    from bench.report.html import _md_block

    lines = ["# Device time of the leases behind this report", "",
             "Written by `python scripts/gpu_ingest.py` from each lease's `lease.json` (beside "
             "this file as `lease-<k>.json`): every step of `bash scripts/gpu-session.sh "
             "lease`, and each `bench run` command of the study's seed blocks, with the "
             "seconds of device time it took (the machine's start and the transfers, which the "
             "device tool also counts, are not in them).", ""]  # fmt: skip
    for k, lease in enumerate(leases, 1):
        machine = lease.get("gpu", lease.get("device", "?"))
        lines.append(f"- lease {k}: started {lease.get('started')}, {machine}, torch "
                     f"{lease.get('torch', '?')}; {lease.get('elapsed_s', '?')} s in all")
    frame = table.drop(columns=["started", "gpu", "torch"]).fillna("").astype(str)
    lines += ["", _md_block(Table("Steps and commands", frame)), ""]
    return "\n".join(lines)


def ingest(folders: list[Path], results: Path) -> list[str]:
    """Unpack and build (the module's steps); returns what it did, a line each."""
    archives = [_archives(folder) for folder in folders]  # every check before any write
    leases = [_lease_record(f / "lease.json") for f in folders if (f / "lease.json").is_file()]
    said = [f"left out {p} (cut off while packing: its runs are in no archive of this folder)"
            for f in folders for p in sorted(f.glob("*.tar.gz.part"))]  # fmt: skip
    from bench import store  # ROOT on sys.path: main()

    for found in archives:
        for path, into in found:
            store.unpack(path, results / into)
            said.append(f"unpacked {path.name} under {results / into}")
    checks = {p.name: p for f in folders for p in _checks(f)}  # a later lease's wins
    for name, path in checks.items():
        (results / "perf").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, results / "perf" / name)
        said.append(f"copied {path} to {results / 'perf' / name}")

    study, report = results / STUDY, results / STUDY / "report"
    if (study / "runs").is_dir():
        _bench("report", study)
        said.append(f"built {report}")
        for cpu in CPU_STUDIES:
            if (results / cpu / "report").is_dir():
                done = _bench("verdicts", results / cpu / "report", report, ok=(0, 1))
                (report / f"verdicts-vs-{cpu}.txt").write_text(done.stdout, encoding="utf-8")
                brief = "; ".join(done.stdout.splitlines()[:2])
                said.append(f"verdicts beside {cpu} ({brief}): {report / f'verdicts-vs-{cpu}.txt'}")
            else:
                said.append(f"skipped the verdicts beside {cpu}: no {results / cpu / 'report'}")
    else:
        said.append(f"skipped the report: no study block came back ({study / 'runs'})")
    gpu_seeds = results / "gpu" / SEEDS
    cpu_seeds = results / SEEDS / "report"  # the committed report's runs.csv, or the runs
    cpu_seeds = cpu_seeds if cpu_seeds.is_dir() else results / SEEDS
    if (gpu_seeds / "runs").is_dir() and cpu_seeds.is_dir():
        report.mkdir(parents=True, exist_ok=True)
        done = _bench("agree", cpu_seeds, gpu_seeds, "--csv", report / "agreement-cpu-gpu.csv",
                      ok=(0, 1))  # 1: some differ, a finding to report and explain
        (report / "agreement-cpu-gpu.txt").write_text(done.stdout, encoding="utf-8")
        brief = (done.stdout.splitlines()[1:2] or ["?"])[0]  # "<k> differ"
        said.append(f"CPU/GPU agreement on seeds 0-9 ({brief}): {report / 'agreement-cpu-gpu.txt'}")
    else:
        said.append(f"skipped the CPU/GPU agreement: needs {gpu_seeds / 'runs'} and {cpu_seeds}")
    if leases:
        report.mkdir(parents=True, exist_ok=True)
        table = device_time(leases)
        table.to_csv(report / "device_time.csv", index=False)
        (report / "device-time.md").write_text(_device_time_md(table, leases), encoding="utf-8")
        for k, lease in enumerate(leases, 1):
            (report / f"lease-{k}.json").write_text(json.dumps(lease, indent=1))
        said.append(f"device time of {len(leases)} lease(s): {report / 'device-time.md'}")
    for name in checks:
        md = results / "perf" / name.replace(".json", ".md")
        md.write_text(_bench("perf", "--summary", results / "perf" / name).stdout, encoding="utf-8")
        said.append(f"the check as markdown: {md}")
    return said


def main(argv: list[str]) -> int:
    if not argv or any(a.startswith("-") for a in argv):
        print("usage: python scripts/gpu_ingest.py FILES_AT [FILES_AT ...]  (one per lease, in "
              "order)", file=sys.stderr)  # fmt: skip
        return 2
    results = Path(os.environ.get("RESULTS", ROOT / "results")).resolve()
    sys.path.insert(0, str(ROOT))
    try:
        for line in ingest([Path(a).resolve() for a in argv], results):
            print(line)
    except Refused as exc:
        print(f"gpu_ingest.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
