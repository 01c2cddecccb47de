"""Benchmark 3 — training throughput of ID-SASRec and the text model, and where a step's time goes.

Each model trains for ``--epochs`` epoch(s) with :func:`xdtutor.train.fit` (the loop every strategy
uses: AdamW, warm-up, clipping, bf16 autocast on CUDA, one validation pass per epoch) on the
Scientific target (8,442 users, 4,385 items, released split). Reported per model: training rows
(windows of ``max_len``), the epoch wall time, the validation time inside it (timed separately with
:func:`xdtutor.evaluate.evaluate` on the valid set), training sequences/s and target items/s
excluding validation, peak memory, and parameter counts.

The text model is :class:`~xdtutor.models.TextSeqRec` on frozen all-MiniLM-L6-v2 embeddings of the
item texts; encoding them is *not* part of the epoch (it happens once, cached on disk:
``encode_seconds`` says how long this run spent on it, near 0 on a cache hit).

``--chunk-rows 0 32`` trains each model once per setting of the encoder's length-sorted chunks
(``SequenceEncoder.chunk_rows``; 0 = the whole batch padded to its longest history, the old
behaviour; the models' default chunks on the CPU only) and ``summary["speedup"]`` gives the ratio of
the last setting over the first; ``--precision fp32 bf16`` (CUDA) trains each once without and with
bf16 autocast (``TrainConfig.bf16``; default: what ``fit`` does on the device). With ``--epochs``
above 1, ``epoch_s`` is the median of the epochs after the first (the first pays for CUDA's start-up); ``summary["profile"]`` splits a few training
steps of each setting into matrix products, dropout masks (``bernoulli``), softmax and the rest
(``torch.profiler``, self CPU time), i.e. where the time went before and after.

Run: ``python -m benchmarks.bench_training [--dataset scientific|food] [--chunk-rows 0 32] [--epochs 1]``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

import torch

from . import common


def main(argv: list[str] | None = None) -> dict:
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--subsample", type=float, default=1.0, help="fraction of Scientific users")
    p.add_argument("--models", nargs="+", default=["sasrec", "text"], choices=["sasrec", "text", "text_moe"])
    p.add_argument("--dataset", default="scientific", choices=["scientific", "food"])
    p.add_argument("--chunk-rows", type=int, nargs="+", default=None,
                   help="encoder chunk sizes to compare (0 = no length-sorted chunks; default: the models' own, "
                        "32 on the CPU and none elsewhere)")
    p.add_argument("--name", default=None,
                   help="result name (default: training, or training_<dataset> for another dataset)")
    p.add_argument("--profile-steps", type=int, default=5, help="training steps profiled per setting (0 = none)")
    p.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=None,
                   help="train once per precision (bf16 = autocast, CUDA only; default: bf16 on CUDA, else fp32)")
    args = p.parse_args(argv)
    device = common.setup(args)
    from xdtutor.train import TrainConfig  # fit's own default decides the default precision

    precisions = args.precision or (["bf16"] if device.type == "cuda" and TrainConfig().bf16 else ["fp32"])
    if "bf16" in precisions and device.type != "cuda":
        p.error("--precision bf16 needs CUDA (fit uses bf16 autocast there only)")
    env = common.environment(device)

    from xdtutor.data import load_dataset
    from xdtutor.encoders import EncoderConfig, encode_texts
    from xdtutor.evaluate import evaluate
    from xdtutor.models import SASRec, TextSeqRec, count_parameters
    from xdtutor.train import fit, training_sequences

    name_of = {"scientific": ("scientific", None), "food": ("food_kitchen", "food")}
    dataset, target = name_of[args.dataset]
    split = load_dataset(dataset, data_dir=common.data_dir(), subsample=args.subsample,
                         seed=args.seed, target=target).target
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, patience=args.epochs, seed=args.seed,
                      device=str(device), progress=False)
    inputs, targets = training_sequences(split, cfg.max_len)
    n_rows, n_targets = int(inputs.shape[0]), int((targets > 0).sum())

    text_emb, encode_seconds = None, 0.0
    if any(m.startswith("text") for m in args.models):
        t0 = time.perf_counter()
        text_emb = torch.as_tensor(encode_texts(split.domain.texts, EncoderConfig(model=common.encoder_path()),
                                                device=device, progress=False))
        encode_seconds = time.perf_counter() - t0

    rows, profile = [], {}
    chunks = args.chunk_rows or [None]
    for chunk, precision, name in ((c, pr, m) for c in chunks for pr in precisions for m in args.models):
        torch.manual_seed(args.seed)
        if name == "sasrec":
            model = SASRec(split.n_items, hidden=args.hidden, max_len=cfg.max_len)
        else:
            model = TextSeqRec(text_emb, hidden=args.hidden, max_len=cfg.max_len,
                               adaptor="moe" if name == "text_moe" else "linear")
        model.encoder.chunk_rows = chunk
        chunk = model.encoder.chunk_rows_on(device)  # what the setting means here
        label = type(model).__name__ + (" (moe)" if name == "text_moe" else "")
        if args.profile_steps and precision == precisions[0]:
            profile[f"{label}, chunk_rows={chunk}"] = profile_steps(model, inputs, targets, args)
        total, trainable = count_parameters(model)
        with common.peak_memory(device) as mem:
            history = fit(model, split, replace(cfg, bf16=precision == "bf16"))
        t0 = time.perf_counter()
        evaluate(model, split.valid, split.protocol, device=device, batch_size=cfg.eval_batch_size)
        common.sync(device)
        valid_s = time.perf_counter() - t0
        seconds = history.epoch_seconds
        epoch_s = statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]
        train_s = max(epoch_s - valid_s, 1e-9)
        rows.append({"model": label, "chunk_rows": chunk, "precision": precision,
                     "params": total, "trainable": trainable, "rows": n_rows, "targets": n_targets,
                     "epochs": len(history.epochs), "epoch_s": round(epoch_s, 2),
                     "valid_s": round(valid_s, 2), "train_seq_per_s": round(n_rows / train_s, 1),
                     "train_targets_per_s": round(n_targets / train_s, 1), "peak_mib": round(mem.mib, 1),
                     "final_loss": round(history.train_loss[-1], 4),
                     "valid_ndcg@10": round(history.valid_metrics[-1]["ndcg@10"], 4)})
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    speedup = {}
    if args.chunk_rows and len(args.chunk_rows) > 1:
        first, last = args.chunk_rows[0], args.chunk_rows[-1]
        for label in dict.fromkeys(r["model"] for r in rows):
            a = next(r for r in rows if r["model"] == label and r["chunk_rows"] == first)
            b = next(r for r in rows if r["model"] == label and r["chunk_rows"] == last
                     and r["precision"] == a["precision"])
            speedup[label] = round(b["train_seq_per_s"] / a["train_seq_per_s"], 2)

    summary = {"dataset": split.protocol.describe(), "batch_size": args.batch_size,
               "speedup": speedup, "profile": profile,
               "precisions": precisions,
               "encode_seconds": round(encode_seconds, 2), "memory_method": mem.method}
    columns = ["model", "chunk_rows", "precision", "params", "trainable", "rows", "targets", "epochs", "epoch_s", "valid_s",
               "train_seq_per_s", "train_targets_per_s", "peak_mib", "final_loss", "valid_ndcg@10"]
    common.write_result(args.name or ("training" if args.dataset == "scientific" else f"training_{args.dataset}"),
                        args, env, rows,
                        summary, columns,
                        title=f"Training throughput on {args.dataset} (xdtutor.train.fit)")
    return {"rows": rows, "summary": summary}


def profile_steps(model, inputs, targets, args) -> dict[str, float]:
    """Share of self CPU time of a few training steps by kind of operation (``torch.profiler``)."""
    from torch.profiler import ProfilerActivity, profile

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(args.seed))
    model.train()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for step in range(args.profile_steps):
            idx = order[step * args.batch_size:(step + 1) * args.batch_size]
            loss = model.loss(inputs[idx], targets[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    kinds = {"matrix products": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"),
             "dropout masks": ("aten::bernoulli_",), "softmax": ("aten::_log_softmax", "aten::_log_softmax_backward_data",
                                                                 "aten::_softmax", "aten::_softmax_backward_data")}
    totals = {k: 0.0 for k in kinds} | {"other": 0.0}
    for event in prof.key_averages():
        kind = next((k for k, names in kinds.items() if event.key in names), "other")
        totals[kind] += event.self_cpu_time_total
    all_us = sum(totals.values()) or 1.0
    return {"ms_per_step": round(all_us / 1000 / args.profile_steps, 1),
            **{k: round(v / all_us, 3) for k, v in totals.items()}}


if __name__ == "__main__":
    main()
