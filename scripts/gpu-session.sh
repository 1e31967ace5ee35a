#!/usr/bin/env bash
# The prepared commands of a session lent a GPU (the device tool's `run`: at most 10 minutes a
# command, 15 minutes of device time in all, machine start included; results come back only
# through $OUT, at most 8 files of 16 MiB). The tree travels without .venv: the device's own
# python3 (Python 3.12, torch 2.11, Triton 3.6, pandas, pyarrow, joblib, tqdm, scipy; no dask, no
# pytorch-fid, neither needed here) runs it from the tree.
#
#   bash scripts/gpu-session.sh lease [S] [STEP...]
#                                            # the whole lease in one command, stopping itself
#                                            #   before S seconds (default GPU_BUDGET_S): the
#                                            #   study's graphs checked against eager, the study
#                                            #   in seed blocks, seeds 0-9, the check; rerun it
#                                            #   to go on (scripts/gpu_lease.py says how)
#   bash scripts/gpu-session.sh check        # issue 24: python -m bench perf --device cuda
#                                            #   correctness first (projection, then replay vs
#                                            #   eager for every optimizer), then the timings;
#                                            #   its JSON is rewritten after each part
#   bash scripts/gpu-session.sh pilot        # issue 22: 1,250 steps of each optimizer of
#                                            #   unrolled-ring-gpu at P = 256 (2 evaluations),
#                                            #   timed: what a part of the study will take
#   bash scripts/gpu-session.sh study I N    # issue 22: part I of N of unrolled-ring-gpu
#   bash scripts/gpu-session.sh seeds I N    # issue 22: part I of N of unrolled-ring-counter
#                                            #   (seeds 0-9, counter streams: against the same
#                                            #   sweep on the CPU, results/unrolled-ring-counter)
#
# A study part runs under `timeout` (GPU_BUDGET_S, default 540 s) and then packs every run it
# finished (runs/ and sweep.json, never checkpoints: a population of 256 leaves ~200 MB of
# them) into $OUT/<sweep>-<I>of<N>.tar.gz; a population cut by the timeout is lost with the
# machine, so size N from the pilot: one part must finish inside the budget. `lease` packs the
# study by seed block instead (unrolled-ring-gpu-<r>.tar.gz) and the seeds as
# unrolled-ring-counter.tar.gz. Back here, after leases or the separate commands:
#
#   python scripts/gpu_ingest.py <files_at> [<files_at> ...]   # unpack, report, verdicts beside
#                                            #   the CPU's, CPU/GPU agreement, device time, the
#                                            #   check as markdown (its docstring says what)
#
# which does, besides the device time and the verdicts:
#
#   tar -xzf <files_at>/unrolled-ring-gpu-1of6.tar.gz -C results     # each block or part
#   python -m bench report results/unrolled-ring-gpu
#   mkdir -p results/gpu && tar -xzf <files_at>/unrolled-ring-counter-1of1.tar.gz -C results/gpu
#   python -m bench agree results/unrolled-ring-counter/report results/gpu/unrolled-ring-counter
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
: "${OUT:?run this through the device tool, which sets OUT}"
PY=${PYTHON:-python3}
BUDGET=${GPU_BUDGET_S:-540}
# For tests/test_gpu_session.py, which runs these commands on the CPU with tiny sweeps:
DEVICE=${GPU_SESSION_DEVICE:-cuda}
SWEEPS=${GPU_SESSION_SWEEPS:-bench/sweeps}
RESULTS=${GPU_SESSION_RESULTS:-results}
export DEVICE SWEEPS RESULTS PYTHON=$PY

pack() {  # pack SWEEP NAME: the finished runs of $RESULTS/SWEEP into $OUT/NAME.tar.gz
    local sweep=$1 name=$2
    [ -d "$RESULTS/$sweep/runs" ] || { echo "no finished run of $sweep to pack"; return 0; }
    # renamed once whole: a command killed while packing leaves a .part, not a truncated archive
    tar -czf "$OUT/$name.tar.gz.part" -C "$RESULTS" "$sweep/sweep.json" "$sweep/runs" &&
        mv "$OUT/$name.tar.gz.part" "$OUT/$name.tar.gz" || return 1
    echo "packed $(find "$RESULTS/$sweep/runs" -name '*.json' | wc -l) runs of $sweep:" \
        "$(du -h "$OUT/$name.tar.gz" | cut -f1) -> \$OUT/$name.tar.gz"
}

part() {  # part SWEEP I N
    local sweep=$1 i=$2 n=$3 status=0
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
        || echo "no nvidia-smi"
    # timeout catches SIGINT itself, so bench run starts with its default action even where this
    # command was started ignoring it (in the background); SIGKILL 30 s after SIGINT regardless
    timeout -k 30 --signal=INT "$BUDGET" "$PY" -m bench run "$SWEEPS/$sweep.toml" \
        --device "$DEVICE" --population 256 --part "$i/$n" --out "$RESULTS" 2>&1 \
        | tee "$OUT/$sweep-${i}of$n.log" || status=$?
    pack "$sweep" "$sweep-${i}of$n"
    return "$status"
}

case "${1:-}" in
lease)
    shift
    "$PY" scripts/gpu_lease.py "${1:-$BUDGET}" "${@:2}" 2>&1 | tee "$OUT/lease.log"
    ;;
check)
    nvidia-smi || true
    "$PY" -m bench perf --device cuda --out "$OUT" 2>&1 | tee "$OUT/check.log"
    ;;
pilot)
    "$PY" - <<'EOF' 2>&1 | tee "$OUT/pilot.log"
import json, os, time
import torch, ogan
from bench.config import load_sweep
from bench.population import optimizer_key

device = os.environ["DEVICE"]
sweep = load_sweep(os.path.join(os.environ["SWEEPS"], "unrolled-ring-gpu.toml"), device=device)
sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
groups = {}
for spec in sweep.specs:
    groups.setdefault(optimizer_key(spec), []).append(spec)
steps, out = int(os.environ.get("GPU_PILOT_STEPS", 1250)), []
for key, specs in groups.items():
    kw = key.train_kwargs()
    kw.pop("seed")
    kw.update(steps=steps, eval_every=steps // 2)
    sync()
    t0 = time.perf_counter()
    results = ogan.train_population(**kw, seeds=[s.seed for s in specs], threads=1)
    sync()
    seconds = time.perf_counter() - t0
    evals = sum(r.summary["eval_time"] for r in results)  # 3 evaluations: steps 0, 625, 1250
    total, n_evals = sweep.specs[0].steps, sweep.specs[0].steps // sweep.specs[0].eval_every + 1
    row = {"optimizer": key.label, "members": len(results), "steps": steps,
           "seconds": seconds, "eval_seconds": evals, "execution": results[0].summary["execution"],
           "ms_per_step": 1e3 * (seconds - evals) / steps,
           "projected_s": (seconds - evals) * total / steps + evals / 3 * n_evals}
    out.append(row)
    print(json.dumps(row), flush=True)
gpu = torch.cuda.get_device_name() if device == "cuda" else device
json.dump({"gpu": gpu, "torch": torch.__version__, "pilot": out},
          open(os.path.join(os.environ["OUT"], "pilot.json"), "w"), indent=1)
print("projected whole study: %.0f s" % sum(r["projected_s"] for r in out))
EOF
    ;;
study) part unrolled-ring-gpu "${2:?part I}" "${3:?of N}" ;;
seeds) part unrolled-ring-counter "${2:?part I}" "${3:?of N}" ;;
*)
    echo "usage: bash scripts/gpu-session.sh lease [SECONDS] [STEP...] | check | pilot |" \
        "study I N | seeds I N" >&2
    exit 2
    ;;
esac
