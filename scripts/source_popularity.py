"""Popularity on the source validation users that early-stop pretraining (the yardstick for source NDCG@10).

Same split and user sample as :func:`xdtutor.pipeline.pretrain` (``source_split`` with
``max_eval_users`` and the pretraining seed), so the printed NDCG@10 is comparable with the
"source valid NDCG@10" lines of ``results/*.md``:

    XDTUTOR_DATA_DIR=../shared/data python scripts/source_popularity.py [--users 20000] [--seeds 0 1]
"""

from __future__ import annotations

import argparse

from xdtutor.data import load_dataset
from xdtutor.evaluate import evaluate
from xdtutor.models import Popularity
from xdtutor.pretrain_source import source_split


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="food_kitchen")
    p.add_argument("--target", default="food")
    p.add_argument("--users", type=int, default=20000, help="source validation users (source_eval_users)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = p.parse_args(argv)
    for source in load_dataset(args.dataset, target=args.target).sources:
        for seed in args.seeds:
            split = source_split(source, max_eval_users=args.users, seed=seed)
            pop = Popularity(source.n_items).fit(split.train.values())
            m = evaluate(pop, split.valid, split.protocol).metrics
            print(f"{source.name} seed {seed}: {len(split.valid)} users, Popularity NDCG@10 {m['ndcg@10']:.4f} "
                  f"R@10 {m['recall@10']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
