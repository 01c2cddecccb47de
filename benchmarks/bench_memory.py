"""Benchmark — peak memory of one training step and one evaluation batch against catalogue size.

Two tensors grow with the catalogue N: the training loss's (M, N) logits (M = the batch's real next
items) and evaluation's (B, N) scores. ``train.logits_chunk`` cuts the first into chunks under
activation checkpointing; :func:`xdtutor.evaluate.evaluate` cuts its batches so that B × N stays
under ``max_scores`` (2^27). This script measures both on synthetic catalogues (random text vectors
of width 384, the text model of the full-scale configs) with and without the chunking, and
extrapolates the largest catalogue a 16 GB card holds from the measured per-item cost.

Run: ``python -m benchmarks.bench_memory --threads 1 [--items 50000 200000] [--rows 3200]``
(on CUDA: ``--device cuda --items 200000 1000000``; the peak is ``max_memory_allocated`` there).
"""

from __future__ import annotations

import numpy as np
import torch

from . import common


def step_memory(n_items: int, rows: int, chunk: int, device: torch.device, dim: int = 384,
                hidden: int = 64) -> tuple[float, float]:
    """(peak MiB, seconds) of one forward + backward of the text model's loss over ``rows`` targets."""
    from xdtutor.models import TextSeqRec

    g = torch.Generator().manual_seed(0)
    model = TextSeqRec(torch.randn(n_items, dim, generator=g), hidden=hidden, adaptor="mlp").to(device)
    length = 50
    seq = torch.randint(1, n_items + 1, (rows // length, length + 1), generator=g).to(device)
    x, y = seq[:, :-1], seq[:, 1:]                                   # (rows / 50, 50): every position a target
    with common.peak_memory(device) as peak:
        model.loss(x, y, logits_chunk=chunk).backward()
    return peak.mib, peak.seconds


def eval_memory(n_items: int, users: int, max_scores: int, device: torch.device, dim: int = 384) -> tuple[float, float]:
    """(peak MiB, seconds) of evaluating ``users`` users over ``n_items`` items in one call."""
    from xdtutor.data.types import EvalSet
    from xdtutor.evaluate import evaluate
    from xdtutor.models import TextSeqRec
    from xdtutor.protocol import Protocol

    g = torch.Generator().manual_seed(0)
    model = TextSeqRec(torch.randn(n_items, dim, generator=g), hidden=64, adaptor="mlp").to(device).eval()
    rng = np.random.default_rng(0)
    histories = [rng.integers(0, n_items, size=5) for _ in range(users)]
    eval_set = EvalSet([str(u) for u in range(users)], histories, rng.integers(0, n_items, size=users))
    with common.peak_memory(device) as peak:
        evaluate(model, eval_set, Protocol(dataset="synthetic", split="-"), batch_size=users, max_scores=max_scores)
    return peak.mib, peak.seconds


def main(argv: list[str] | None = None) -> dict:
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--items", type=int, nargs="+", default=[50_000, 200_000])
    p.add_argument("--rows", type=int, default=3200, help="training targets per step (batch × 50)")
    p.add_argument("--chunk", type=int, default=256, help="train.logits_chunk of the chunked rows")
    p.add_argument("--users", type=int, default=1024, help="users in the one evaluation call")
    args = p.parse_args(argv)
    device = common.setup(args)
    env = common.environment(device)
    rows = []
    for n in args.items:
        for chunk in (0, args.chunk):
            mib, s = step_memory(n, args.rows, chunk, device)
            rows.append({"what": "training step", "items": n, "setting": f"logits_chunk={chunk}", "peak_mib": mib,
                         "seconds": s})
        for budget in (2 ** 62, 2 ** 24):
            mib, s = eval_memory(n, args.users, budget, device)
            rows.append({"what": f"evaluate {args.users} users", "items": n,
                         "setting": "max_scores=unlimited" if budget == 2 ** 62 else f"max_scores=2^{budget.bit_length() - 1}",
                         "peak_mib": mib, "seconds": s})
    # per-item cost of a chunked training step, from the two catalogue sizes (slope), to 16 GB
    chunked = [r for r in rows if r["setting"] == f"logits_chunk={args.chunk}"]
    summary = {}
    if len(chunked) >= 2:
        slope = (chunked[-1]["peak_mib"] - chunked[0]["peak_mib"]) / (chunked[-1]["items"] - chunked[0]["items"])
        if slope > 0:
            summary["chunked_step_mib_per_1k_items"] = round(1000 * slope, 2)
            summary["largest_catalogue_16gb_chunked_step"] = int(16 * 1024 / slope)
        plain = [r for r in rows if r["setting"] == "logits_chunk=0"]
        summary["unchunked_over_chunked_peak_at_largest"] = round(plain[-1]["peak_mib"] / max(chunked[-1]["peak_mib"], 1e-9), 2)
    common.write_result("memory", args, env, rows, summary,
                        title=f"Peak memory vs catalogue size ({args.rows} training targets, "
                              f"{args.users} evaluation users)")
    return {"rows": rows, "summary": summary}


if __name__ == "__main__":
    main()
