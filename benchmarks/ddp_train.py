"""Data-parallel training with PyTorch DDP through ``torchrun`` — the scale-out recipe.

``xdtutor.train.fit`` wraps the model in ``DistributedDataParallel`` and shards the sequences with
``DistributedSampler`` whenever ``torch.distributed`` is initialised; this script does the
initialisation (NCCL on GPUs, gloo on CPUs), pins each process to its GPU and trains one model on a
real dataset. ``--batch-size`` is per process: the global batch is ``N × batch``.

    # 4 GPUs on one machine
    torchrun --standalone --nproc_per_node=4 -m benchmarks.ddp_train --model text --epochs 10
    # 2 CPU processes (what tests/test_distributed.py checks against a single process)
    torchrun --standalone --nproc_per_node=2 -m benchmarks.ddp_train --device cpu --epochs 1 --subsample 0.1

Rank 0 validates after every epoch, broadcasts the metrics (all ranks stop together) and prints
the history and test metrics.
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="scientific", choices=["scientific", "food", "kitchen"])
    p.add_argument("--model", default="sasrec", choices=["sasrec", "text"])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=256, help="per process")
    p.add_argument("--subsample", type=float, default=1.0)
    p.add_argument("--device", default="auto", help="cuda (one GPU per process) or cpu")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from xdtutor.data import load_dataset
    from xdtutor.encoders import EncoderConfig, encode_texts
    from xdtutor.evaluate import evaluate
    from xdtutor.models import SASRec, TextSeqRec
    from xdtutor.train import TrainConfig, fit
    from xdtutor.utils import select_device

    device = select_device(args.device)
    distributed = "WORLD_SIZE" in os.environ
    if distributed:
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = torch.distributed.get_rank() if distributed else 0
    world = torch.distributed.get_world_size() if distributed else 1
    try:
        name, target = {"scientific": ("scientific", None), "food": ("food_kitchen", "food"),
                        "kitchen": ("food_kitchen", "kitchen")}[args.dataset]
        split = load_dataset(name, subsample=args.subsample, seed=args.seed,
                             **({"target": target} if target else {})).target
        torch.manual_seed(args.seed)
        if args.model == "sasrec":
            model = SASRec(split.n_items)
        else:
            # every rank encodes (cached on disk after the first run); rank 0 first avoids a race
            if distributed and rank != 0:
                torch.distributed.barrier()
            emb = torch.as_tensor(encode_texts(split.domain.texts, EncoderConfig(), device=device,
                                               progress=rank == 0))
            if distributed and rank == 0:
                torch.distributed.barrier()
            model = TextSeqRec(emb)
        config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                             device=str(device.type), progress=rank == 0)
        t0 = time.perf_counter()
        history = fit(model, split, config)
        if rank == 0:
            print(f"{world} process(es), global batch {world * args.batch_size}: "
                  f"{len(history.epochs)} epochs in {time.perf_counter() - t0:.1f} s, "
                  f"best valid ndcg@10 {history.best_metric:.4f} (epoch {history.best_epoch})")
            print(evaluate(model, split.test, split.protocol, device=device).table())
    finally:
        if distributed:
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
