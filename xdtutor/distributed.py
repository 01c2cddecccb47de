"""Running under ``torchrun`` (or ``accelerate launch``): which process this is, and the few
collective steps the pipeline needs.

Every process runs the whole pipeline on the same data with the same seeds. Training
(:func:`xdtutor.train.fit`) shards each epoch's rows across the processes with DistributedDataParallel;
evaluation (:func:`xdtutor.evaluate.evaluate`) shards the users and gathers their ranks, so every
process holds the same metrics; only the main process (rank 0) writes files and prints. Without
``torchrun`` (one process) every function here is a no-op.

Launch (see ``book/run_yourself.md``)::

    torchrun --nproc_per_node=4 -m xdtutor run configs/kitchen_to_food.yaml --out runs/k2f    # one node
    torchrun --nnodes=2 --node_rank=$R --master_addr=$HOST --master_port=29500 \\
        --nproc_per_node=8 -m xdtutor run …                                             # two nodes

The run folder must be on storage every node sees (checkpoints are written by rank 0 and read back
by every rank on resume).
"""

from __future__ import annotations

import os
from typing import Any

import torch


def info() -> tuple[bool, int, int]:
    """``(initialised, rank, world size)`` of ``torch.distributed``; ``(False, 0, 1)`` in one process."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return True, dist.get_rank(), dist.get_world_size()
    return False, 0, 1


def is_main() -> bool:
    """Whether this process writes files and prints (rank 0, or the only process)."""
    return info()[1] == 0


def init_from_env(device: str = "auto") -> bool:
    """Join the process group ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1).

    NCCL when CUDA is used (each process on ``cuda:$LOCAL_RANK``), gloo on CPU.

    Returns:
        Whether a process group was started here (the caller then calls :func:`shutdown`).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or info()[0]:
        return False
    use_cuda = torch.cuda.is_available() and device not in ("cpu", "mps")
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    return True


def shutdown() -> None:
    """Leave the process group (after a last barrier, so no process exits while others still talk)."""
    if info()[0]:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def all_gather(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, …]`` on every process (``[obj]`` in one process)."""
    distributed, _, world = info()
    if not distributed:
        return [obj]
    out: list[Any] = [None] * world
    torch.distributed.all_gather_object(out, obj)
    return out


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not info()[0]:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


__all__ = ["all_gather", "broadcast", "info", "init_from_env", "is_main", "shutdown"]
