"""Benchmark — one training step with full-catalogue vs in-batch negatives on the Kitchen source.

Source pretraining on Kitchen (27,637 items) is where the choice matters: with
``TrainConfig.negatives="all"`` every step runs the item adaptor over the whole catalogue and scores
each position against all items; with ``"in_batch"`` only the distinct items of the batch are used.
This script times ``--steps`` AdamW steps of the text model (the full-scale config's architecture:
hidden 64, 2 layers, MLP adaptor) on real Kitchen training windows for both settings and reports
seconds per step and the implied seconds per epoch (training only, no validation).

The item-text embeddings come from the on-disk cache (``xdtutor.encoders.encode_texts``); on a cold
cache the first run encodes the 27,637 Kitchen titles first (``encode_seconds``).

Run: ``python -m benchmarks.bench_negatives --threads 1 [--steps 10] [--batch-size 256]``.
"""

from __future__ import annotations

import time

import torch

from . import common


def time_steps(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, negatives: str,
               steps: int, batch_size: int, seed: int = 0) -> float:
    """Mean wall seconds of one AdamW step (forward, backward, update) over ``steps`` random batches.

    One untimed warm-up step comes first. Batches are drawn from a seeded permutation of the rows.
    """
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    order = torch.randperm(inputs.shape[0], generator=torch.Generator().manual_seed(seed))
    model.train()

    def step(k: int) -> None:
        idx = order[(k * batch_size) % inputs.shape[0]:][:batch_size]
        loss = model.loss(inputs[idx], targets[idx], negatives=negatives)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(0)
    t0 = time.perf_counter()
    for k in range(1, steps + 1):
        step(k)
    return (time.perf_counter() - t0) / steps


def main(argv: list[str] | None = None) -> dict:
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=256)
    args = p.parse_args(argv)
    device = common.setup(args)
    env = common.environment(device)

    from xdtutor.data import load_dataset
    from xdtutor.encoders import EncoderConfig, encode_texts
    from xdtutor.models import TextSeqRec
    from xdtutor.pretrain_source import source_split
    from xdtutor.train import training_sequences

    kitchen = load_dataset("food_kitchen", data_dir=common.data_dir(), target="food").sources[0]
    t0 = time.perf_counter()
    text_emb = torch.as_tensor(encode_texts(kitchen.texts, EncoderConfig(model=common.encoder_path()),
                                            device=device, progress=False))
    encode_seconds = time.perf_counter() - t0
    inputs, targets = training_sequences(source_split(kitchen), 50)
    rows = []
    for negatives in ("all", "in_batch"):
        torch.manual_seed(args.seed)
        model = TextSeqRec(text_emb, hidden=64, n_layers=2, n_heads=2, max_len=50, adaptor="mlp").to(device)
        s = time_steps(model, inputs.to(device), targets.to(device), negatives, args.steps, args.batch_size,
                       args.seed)
        rows.append({"negatives": negatives, "s_per_step": round(s, 4),
                     "epoch_s_train_only": round(s * -(-inputs.shape[0] // args.batch_size), 1)})
    summary = {"catalogue_items": kitchen.n_items, "training_rows": int(inputs.shape[0]),
               "batch_size": args.batch_size, "steps": args.steps, "encode_seconds": round(encode_seconds, 2),
               "speedup_in_batch": round(rows[0]["s_per_step"] / rows[1]["s_per_step"], 2)}
    common.write_result("negatives", args, env, rows, summary,
                        title="Kitchen pretraining step: full-catalogue vs in-batch negatives")
    return {"rows": rows, "summary": summary}


if __name__ == "__main__":
    main()
