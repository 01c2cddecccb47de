"""Popularity on the source validation users that early-stop pretraining (the yardstick for source NDCG@10).

Same split and user sample as :func:`xdtutor.pipeline.pretrain`: the sources as pretraining sees them
(overlapping users cut before their target valid item), ``source_split`` with ``max_eval_users``
and the pretraining seed — so the NDCG@10 is comparable with the "source valid NDCG@10" lines of
``results/*.md``. Writes ``results/source_popularity.json`` (the FAQ quotes it):

    XDTUTOR_DATA_DIR=../shared/data python scripts/source_popularity.py [--users 20000] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xdtutor.data import load_dataset
from xdtutor.evaluate import evaluate
from xdtutor.models import Popularity
from xdtutor.pretrain_source import source_split
from xdtutor.provenance import provenance
from xdtutor.utils import write_json

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="food_kitchen")
    p.add_argument("--target", default="food")
    p.add_argument("--users", type=int, default=20000, help="source validation users (source_eval_users)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=ROOT / "results" / "source_popularity.json")
    args = p.parse_args(argv)
    rows = []
    for source in load_dataset(args.dataset, target=args.target).pretraining_sources():
        for seed in args.seeds:
            split = source_split(source, max_eval_users=args.users, seed=seed)
            pop = Popularity(source.n_items).fit(split.train.values())
            ev = evaluate(pop, split.valid, split.protocol)
            rows.append({"source": source.name, "seed": seed, "users": ev.n_users, **ev.metrics})
            print(f"{source.name} seed {seed}: {ev.n_users} users, Popularity NDCG@10 {ev.metrics['ndcg@10']:.4f} "
                  f"R@10 {ev.metrics['recall@10']:.4f}")
    write_json(args.out, {"what": "Popularity on the source validation users of pretraining", "dataset": args.dataset,
                          "target": args.target, "protocol_line": split.protocol.describe(), **provenance(),
                          "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
