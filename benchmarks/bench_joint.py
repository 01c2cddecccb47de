"""Benchmark — one step of joint Kitchen + Food training: a softmax over both catalogues vs per domain.

Joint multi-domain training (the ``joint`` strategy, ``configs/kitchen_to_food_joint.yaml``) trains one
text model on the Food training sequences and every Kitchen sequence (overlapping users cut before their
Food valid item), 36,298 items in all. With ``TrainConfig.negatives="all"`` every step runs the item
adaptor over both catalogues and scores every position against all of them; with ``"per_domain"`` a
Food next item is scored against the Food items (what evaluation ranks) and a Kitchen next item
against the Kitchen items of the batch (in-batch negatives, pretraining's objective). This script times
``--steps`` AdamW steps of the full-scale config's text model (hidden 64, 2 layers, MLP adaptor) on the
real joint training windows, shuffled, for both settings, and reports seconds per step and the implied
seconds per epoch (training only, no validation). The item texts are embedded with the Kitchen → Food
config's encoder settings, so the embeddings a run of it cached are reused.

Run: ``python -m benchmarks.bench_joint --threads 1 [--steps 10] [--batch-size 256]``.
"""

from __future__ import annotations

from . import common
from .bench_negatives import time_steps


def main(argv: list[str] | None = None) -> dict:
    p = common.base_parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--adaptor", default="mlp", help="the item adaptor (the Kitchen -> Food configs use mlp)")
    args = p.parse_args(argv)
    device = common.setup(args)
    env = common.environment(device)

    import torch

    from xdtutor.data import load_dataset
    from xdtutor.data.views import joint_training, ranked_items
    from xdtutor.encoders import encode_texts
    from xdtutor.experiment import load_config
    from xdtutor.models import TextSeqRec
    from xdtutor.train import training_sequences

    data = load_dataset("food_kitchen", data_dir=common.data_dir(), target="food")
    sources = data.pretraining_sources()
    view = joint_training(data, sources)
    encoder = load_config("configs/kitchen_to_food.yaml").encoder  # the runs' encoder: their cache is reused
    embs = [encode_texts(d.texts, encoder, device=device, progress=False) for d in (data.target.domain, *sources)]
    text_emb = torch.as_tensor(view.table(embs[0], embs[1:]))                        # (N_t + N_s, D)
    inputs, targets = training_sequences(view.split, 50)
    n_food = ranked_items(view.split)
    rows = []
    for negatives in ("all", "per_domain"):
        torch.manual_seed(args.seed)
        model = TextSeqRec(text_emb, hidden=64, n_layers=2, n_heads=2, max_len=50, adaptor=args.adaptor)
        model = model.score_only(n_food, train_on="all").to(device)
        s = time_steps(model, inputs.to(device), targets.to(device), negatives, args.steps, args.batch_size,
                       args.seed)
        rows.append({"negatives": negatives, "s_per_step": round(s, 4),
                     "epoch_s_train_only": round(s * -(-inputs.shape[0] // args.batch_size), 1)})
    summary = {"catalogue_items": int(text_emb.shape[0]), "ranked_items": n_food,
               "training_rows": int(inputs.shape[0]), "batch_size": args.batch_size, "steps": args.steps,
               "adaptor": args.adaptor, "speedup_per_domain": round(rows[0]["s_per_step"] / rows[1]["s_per_step"], 2)}
    common.write_result("joint", args, env, rows, summary,
                        title="Joint Kitchen + Food training step: softmax over both catalogues vs per domain")
    return {"rows": rows, "summary": summary}


if __name__ == "__main__":
    main()
