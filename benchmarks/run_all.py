"""Run every benchmark one after the other, then write ``latest.md`` (and the scaling plot).

``make bench`` runs ``python -m benchmarks.run_all``: on CPU the defaults keep the total under
about 15 minutes on 2 cores (encoding 3,000 titles, evaluation on 4,000 users, one training epoch,
four Kitchen slices, both configs at ``scale: ci``). Each benchmark runs in its own Python process,
so one's memory does not inflate the next one's peak and a failure does not stop the others.

Options: ``--device cuda`` (what :file:`gpu_check.sh` uses), ``--out DIR`` (default
``benchmarks/results``), ``--only encoding scaling …``, ``--skip end_to_end``, ``--quick`` (tiny
sizes, a smoke run of the scripts, seconds to a minute — its numbers mean nothing), and
``--e2e-timeout`` seconds per end-to-end config, ``--threads`` (torch CPU threads, default 1 —
steadier numbers on a shared machine; both sides of every comparison use the same setting), and
``--budget`` seconds for the whole run (a lent GPU machine's time is counted): a benchmark still running
when it is spent is stopped, the ones after it are not started, and ``latest.md``'s footer names both.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import common

BENCHMARKS = {
    "encoding": "benchmarks.bench_encoding",
    "evaluation": "benchmarks.bench_evaluation",
    "training": "benchmarks.bench_training",
    "scaling": "benchmarks.bench_scaling",
    "end_to_end": "benchmarks.bench_end_to_end",
    "memory": "benchmarks.bench_memory",
}

#: Tiny sizes for ``--quick`` (smoke runs; the numbers mean nothing).
QUICK = {
    "encoding": ["--n", "48", "--batch-size", "16", "--repeats", "1"],
    "evaluation": ["--datasets", "scientific", "--max-users", "200", "--peer-users", "40", "--tm-pairs", "1e5"],
    "training": ["--models", "sasrec", "--subsample", "0.05", "--chunk-rows", "0", "32", "--profile-steps", "1"],
    "scaling": ["--fractions", "0.02", "0.05", "--encode-base", "64", "--steps", "1", "--max-users", "400"],
    "end_to_end": ["--configs", "kitchen_to_food", "--set", "data.subsample=0.01",
                   "--set", "data.source_subsample=0.05", "--set", "pretrain.epochs=1",
                   "--set", "train.epochs=1", "--set", "strategies=[zero_shot]",
                   "--set", "baselines=[popularity]", "--set", "cold_start.fractions=[]"],
    "memory": ["--items", "2000", "20000", "--rows", "2000", "--users", "64"],
}


def run_child(cmd: list[str], timeout: float | None) -> int | None:
    """Run one benchmark; its exit status, or None when ``timeout`` seconds passed first — then it is
    killed with every process it started (its own process group: the end-to-end benchmark runs
    ``xdtutor run`` as a child)."""
    proc = subprocess.Popen(cmd, start_new_session=True)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=str(common.RESULTS_DIR))
    p.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=None)
    p.add_argument("--skip", nargs="+", choices=list(BENCHMARKS), default=[])
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads per benchmark (default 1: steadier on a shared machine; 0 = torch's "
                        "default); ignored on CUDA")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of every script")
    p.add_argument("--e2e-timeout", type=float, default=None,
                   help="seconds per end-to-end config (default: the script's)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds for the whole run: the benchmark running when they are spent is stopped, "
                        "later ones are not started (default: no limit)")
    args = p.parse_args(argv)
    if args.budget is not None and args.budget <= 0:
        p.error(f"--budget must be positive, got {args.budget:g}")
    names = [n for n in (args.only or BENCHMARKS) if n not in args.skip]
    Path(args.out).mkdir(parents=True, exist_ok=True)

    times, failed, stopped, not_run = {}, [], [], []
    t_all = time.perf_counter()
    for name in names:
        left = None if args.budget is None else args.budget - (time.perf_counter() - t_all)
        if stopped or (left is not None and left < 1):
            not_run.append(name)
            continue
        cmd = [sys.executable, "-m", BENCHMARKS[name], "--device", args.device, "--out", args.out]
        if args.threads and args.device != "cuda":
            cmd += ["--threads", str(args.threads)]
        if args.quick:
            cmd += QUICK[name]
        if name == "end_to_end":
            # its own limits let it report a run it stopped, rather than being killed with it
            if args.e2e_timeout:
                cmd += ["--timeout", str(args.e2e_timeout)]
            if left is not None:
                cmd += ["--total-timeout", str(max(left - 15, 1))]
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = run_child(cmd, left)
        if rc is None:
            stopped.append(name)
            print(f"=== {name} stopped: the budget of {args.budget:g} s is spent", flush=True)
        times[name] = time.perf_counter() - t0
        if rc not in (0, None):
            failed.append(name)
            print(f"=== {name} FAILED (exit {rc})", flush=True)
    total = time.perf_counter() - t_all
    md = common.write_markdown(args.out)
    footer = ("\n*`python -m benchmarks.run_all` wall time per benchmark: "
              + ", ".join(f"{n} {s:.0f} s" for n, s in times.items()) + f"; total {total:.0f} s"
              + (f"; failed: {', '.join(failed)}" if failed else "")
              + (f"; stopped by the {args.budget:g} s budget: {', '.join(stopped)}" if stopped else "")
              + (f"; not run (budget spent): {', '.join(not_run)}" if not_run else "") + ".*\n")
    with open(md, "a", encoding="utf-8") as fh:
        fh.write(footer)
    print(f"\nwrote {md}")
    print(footer.strip())
    return 1 if failed or stopped or not_run else 0


if __name__ == "__main__":
    sys.exit(main())
