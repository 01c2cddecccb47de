"""Benchmark 4 — how encoding, training and evaluation cost grow with the catalogue and the users.

Slices of the real Kitchen domain: for a fraction ``f`` (default 10/25/50/100 %) keep the first
``f · 27,637`` items, drop every other item from the users' sequences and keep the users with at
least 3 remaining items (chronological leave-one-out, as in ``load_dataset``). Both the catalogue
and the number of evaluated users therefore grow with ``f``. (``load_dataset(subsample=f)`` is not
used: it samples users but keeps the whole catalogue.)

Per slice:

* encoding: ``TextEncoder.encode`` of ``f · encode_base`` item titles (``encode_base`` = all 27,637
  on CUDA; 2,000 on CPU to fit the time budget — the cost per title does not depend on the
  catalogue, so the fitted line extrapolates);
* training: ``--steps`` AdamW steps of SASRec with full-softmax CE (batch 256, as ``fit`` does one
  step, bf16 autocast on CUDA), seconds per step;
* evaluation: :func:`xdtutor.evaluate.evaluate` on the slice's test users (all on CUDA; on CPU the
  first ``f · --max-users`` of them, so users grow with ``f`` too).

A power law ``seconds = c · size^b`` is fitted per stage by least squares in log-log space, with
size = titles (encoding), items (training step) and users × items (evaluation); the exponents
and ``c`` let a user predict their cost. ``plot_scaling.py`` draws the log-log figure.

Run: ``python -m benchmarks.bench_scaling [--fractions 0.1 0.25 0.5 1] [--device cpu]``.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from . import common


def slice_domain(domain, fraction: float):
    """The first ``fraction`` of ``domain``'s items and the users' sequences restricted to them."""
    from xdtutor.data import Domain

    n = max(1, int(round(fraction * domain.n_items)))
    items = domain.items.iloc[:n].reset_index(drop=True)
    seqs = {}
    for user, seq in domain.sequences.items():
        kept = seq[seq < n]
        if len(kept):
            seqs[user] = kept
    return Domain(domain.name, items, seqs)


def fit_power_law(sizes, seconds) -> dict:
    """Least-squares fit of ``log(seconds) = log(c) + b · log(size)``; returns ``{"b", "c", "r2"}``."""
    x, y = np.log(np.asarray(sizes, float)), np.log(np.asarray(seconds, float))
    if len(x) < 2 or np.ptp(x) == 0:
        return {"b": float("nan"), "c": float("nan"), "r2": float("nan")}
    b, a = np.polyfit(x, y, 1)
    pred = a + b * x
    ss_res, ss_tot = float(((y - pred) ** 2).sum()), float(((y - y.mean()) ** 2).sum())
    return {"b": float(b), "c": float(math.exp(a)), "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0}


def train_steps(model, split, steps: int, batch_size: int, device, seed: int) -> float:
    """Seconds per AdamW step (full-softmax CE), after one warm-up step."""
    from xdtutor.train import training_sequences

    inputs, targets = training_sequences(split, model.max_len)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    use_bf16 = device.type == "cuda"

    def step():
        idx = torch.randint(0, inputs.shape[0], (batch_size,), generator=g)
        x, y = inputs[idx].to(device), targets[idx].to(device)           # (B, L), (B, L)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = model.loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step()
    common.sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    common.sync(device)
    model.eval()
    return (time.perf_counter() - t0) / steps


def main(argv: list[str] | None = None) -> dict:
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1.0])
    p.add_argument("--encode-base", type=int, default=None,
                   help="titles encoded at fraction 1 (default: 27,637 on CUDA, 2,000 on CPU)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: 5 on CPU, 30 on CUDA)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--max-users", type=int, default=None,
                   help="evaluated users at fraction 1, f times that at fraction f (default: 2,000 on CPU; all on CUDA)")
    p.add_argument("--plot", default=None, help="PNG path of the log-log plot (default: <out>/scaling.png)")
    args = p.parse_args(argv)
    device = common.setup(args)
    env = common.environment(device)
    cuda = device.type == "cuda"
    encode_base = args.encode_base or (27637 if cuda else 2000)
    steps = args.steps or (30 if cuda else 5)
    max_users = args.max_users if args.max_users is not None else (None if cuda else 2000)

    from xdtutor.data import leave_one_out
    from xdtutor.encoders import EncoderConfig, TextEncoder
    from xdtutor.evaluate import evaluate
    from xdtutor.models import SASRec
    from xdtutor.protocol import Protocol

    kitchen = common.load_domain("kitchen")
    encoder = TextEncoder(EncoderConfig(model=common.encoder_path()), device=device)
    encoder.encode(kitchen.texts[:64], progress=False)  # warm-up
    rows = []
    for f in sorted(args.fractions):
        dom = slice_domain(kitchen, f)
        protocol = Protocol(dataset=f"kitchen slice, first {f:.0%} of items", split="leave-one-out, >= 3 items")
        split = leave_one_out(dom, protocol, min_len=3)
        test = split.test
        if max_users is not None:  # CPU: a cap that grows with f, so users scale too
            from .bench_evaluation import subset

            test = subset(test, max(1, int(round(f * max_users))))
        n_enc = max(1, int(round(f * encode_base)))
        with common.peak_memory(device) as mem_enc:
            encoder.encode(kitchen.texts[:n_enc], progress=False)

        torch.manual_seed(args.seed)
        model = SASRec(dom.n_items, hidden=64, max_len=50).to(device)
        with common.peak_memory(device) as mem_train:
            step_s = train_steps(model, split, steps, args.batch_size, device, args.seed)
        evaluate(model, test, protocol, device=device)  # warm-up
        with common.peak_memory(device) as mem_eval:
            evaluate(model, test, protocol, device=device)
        rows.append({"fraction": f, "items": dom.n_items, "test_users": len(split.test), "eval_users": len(test),
                     "titles_encoded": n_enc, "encode_s": round(mem_enc.seconds, 4),
                     "encode_peak_mib": round(mem_enc.mib, 1), "train_step_s": round(step_s, 4),
                     "train_peak_mib": round(mem_train.mib, 1), "eval_s": round(mem_eval.seconds, 4),
                     "eval_peak_mib": round(mem_eval.mib, 1)})
        del model
    fits = {
        "encode_s ~ titles": fit_power_law([r["titles_encoded"] for r in rows], [r["encode_s"] for r in rows]),
        "train_step_s ~ items": fit_power_law([r["items"] for r in rows], [r["train_step_s"] for r in rows]),
        "eval_s ~ users*items": fit_power_law([r["eval_users"] * r["items"] for r in rows],
                                              [r["eval_s"] for r in rows]),
    }
    full = kitchen.n_items
    summary = {
        "power_laws": {k: {kk: round(vv, 4) if kk != "c" else float(f"{vv:.4g}") for kk, vv in v.items()}
                       for k, v in fits.items()},
        "how_to_predict": "seconds = c * size ** b with size as named in each key",
        "predicted_encode_s_all_kitchen_titles": round(fits["encode_s ~ titles"]["c"] * full
                                                       ** fits["encode_s ~ titles"]["b"], 2),
        "steps": steps, "batch_size": args.batch_size,
        "memory_method": mem_eval.method,
    }
    columns = ["fraction", "items", "test_users", "eval_users", "titles_encoded", "encode_s", "encode_peak_mib",
               "train_step_s", "train_peak_mib", "eval_s", "eval_peak_mib"]
    common.write_result("scaling", args, env, rows, summary, columns,
                        title="Scaling with the catalogue and users (slices of Kitchen)")
    from pathlib import Path

    from .plot_scaling import save_plot

    png = save_plot(rows, fits, args.plot or Path(args.out) / "scaling.png",
                    title=f"Kitchen slices on {env['device']} ({env['device_name']}), {env['date_utc'][:10]}")
    print(f"wrote {png}")
    return {"rows": rows, "summary": summary}


if __name__ == "__main__":
    main()
