"""How every number of a report was produced: metric definitions, metric_info, the code that
ran, the resolved game configuration, the optimizers and the environment, as the runs recorded
them (tables of strings; the report's provenance section renders them).
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from bench.report.data import SweepData


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = json.dumps(v) if isinstance(v, list | tuple) else v
    return out


def _distinct(values: list[Any]) -> str:
    seen = sorted({str(v) for v in values})
    return "; ".join(seen)


def _code_rows(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Which code each workload and optimizer name ran: config["sources"] (ogan.registry)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        config = r["config"]
        for role, src in (config.get("sources") or {}).items():
            kind, _, key = role.partition(".")
            name = config["workload"] if kind == "workload" else config["optimizer"][key or "name"]
            code = (
                f"{src['distribution']} {src['version']}"
                if src.get("distribution")
                else f"sha256 {src.get('sha256') or '(no file)'}"
            )
            row = rows.setdefault((role, name), {"found as": set(), "object": set(), "code": set()})
            row["found as"].add(src["via"])
            row["object"].add(src["target"])
            row["code"].add(code)
    return pd.DataFrame(
        [
            {"name": name, "role": role, **{k: "; ".join(sorted(v)) for k, v in row.items()}}
            for (role, name), row in rows.items()
        ]
    )


def provenance(data: SweepData) -> dict[str, pd.DataFrame]:
    """How every number was produced: metric definitions, metric_info, game config, environment."""
    by_run = {r["run_id"]: r for r in data.records}
    wl_of = dict(zip(data.runs["run_id"], data.runs["workload"]))
    metric_rows, info_rows, config_rows = [], [], []
    for wl, info in data.workloads.items():
        for m, (desc, hib) in info.metrics.items():
            metric_rows.append(
                {
                    "workload": wl,
                    "metric": m,
                    "primary": m == info.primary,
                    "better": "higher" if hib else "lower",
                    "target": f"{info.target:g}"
                    if m == info.primary and info.target is not None
                    else "",
                    "definition": desc,
                }
            )
        recs = [by_run[rid] for rid, w in wl_of.items() if w == wl]
        infos = [_flatten(r["summary"].get("metric_info") or {}) for r in recs]
        for key in sorted({k for i in infos for k in i}):
            info_rows.append(
                {"workload": wl, "key": key, "value": _distinct([i.get(key) for i in infos])}
            )
        if not any(infos):
            info_rows.append(
                {
                    "workload": wl,
                    "key": "(none)",
                    "value": "computed in closed form from the parameters",
                }
            )
        configs = [
            _flatten(
                {k: v for k, v in r["config"].items() if k not in ("optimizer", "seed", "sources")}
            )
            for r in recs
        ]
        for key in sorted({k for c in configs for k in c}):
            config_rows.append(
                {"workload": wl, "key": key, "value": _distinct([c.get(key) for c in configs])}
            )
    envs = [_flatten(r.get("env") or {}) for r in data.records]
    env_rows = [
        {"key": key, "value": _distinct([e.get(key) for e in envs])}
        for key in sorted({k for e in envs for k in e})
    ]
    # The update scheme differs between optimizers (extrapolation methods are always
    # simultaneous), which matters when comparing them, so it is listed per optimizer.
    schemes: dict[tuple[str, str], set[str]] = {}
    for r in data.runs.itertuples(index=False):
        config = by_run[r.run_id]["config"]
        scheme = f"{config.get('scheme')} (d_steps={config.get('d_steps')})"
        schemes.setdefault((r.workload, r.optimizer), set()).add(scheme)
    optimizer_rows = [
        {
            "workload": wl,
            "optimizer": v,
            "scheme": "; ".join(sorted(schemes.get((wl, v), ()))),
            "optimizer config (lr swept)": json.dumps(cfg, sort_keys=True),
        }
        for (wl, v), cfg in sorted(data.optimizer_config.items())
    ]
    return {
        "metrics": pd.DataFrame(metric_rows),
        "code": _code_rows(data.records),
        "metric_info": pd.DataFrame(info_rows),
        "config": pd.DataFrame(config_rows),
        "optimizers": pd.DataFrame(optimizer_rows),
        "environment": pd.DataFrame(env_rows),
    }
