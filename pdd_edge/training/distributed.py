"""What the training loop needs to know about torchrun / DistributedDataParallel.

The loop reads rank and world size from an initialised process group (`setup.TrainSetup.started`
joins the one torchrun describes), shards every epoch by rank, sums metrics across ranks, checks
that the replicas stay identical, and lets only rank 0 write files. With no process group
everything degenerates to a single process.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def dist_info() -> DistInfo:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return DistInfo(rank=dist.get_rank(), world=dist.get_world_size())
    return DistInfo()


def wrap(model: nn.Module, info: DistInfo, device: torch.device, sync_bn: bool = False) -> nn.Module:
    """`model` in DDP when there are several ranks (gradients averaged in backward; rank 0's
    weights broadcast at construction). With `sync_bn` its BatchNorms share batch statistics
    across ranks: the module objects are replaced in place, their state-dict keys stay the same."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def barrier(info: DistInfo) -> None:
    """Every rank waits here until all have arrived (rank 0 finishing a file the others read)."""
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()


def broadcast_int(value: int, info: DistInfo) -> int:
    """Rank 0's `value` on every rank (a decision rank 0 alone can make, e.g. one that measures)."""
    if not info.enabled:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.int64)
    if dist.get_backend() == "nccl":  # NCCL moves CUDA tensors only
        t = t.to(f"cuda:{torch.cuda.current_device()}")
    dist.broadcast(t, src=0)  # a sync point: every rank must reach it
    return int(t.item())


def replica_spread(model: nn.Module, info: DistInfo) -> float:
    """The largest difference of any parameter (mask logits included) between two ranks: 0.0 while
    DDP keeps the replicas identical, as it must."""
    if not info.enabled:
        return 0.0
    import torch.distributed as dist

    flat = torch.cat([p.detach().flatten().float() for p in model.parameters()])
    hi, lo = flat.clone(), flat.clone()
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    return float((hi - lo).max()) if flat.numel() else 0.0


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        import torch.distributed as dist

        device = values.device
        values = values.clone()
        if dist.get_backend() == "nccl":  # NCCL reduces CUDA tensors only
            values = values.to(f"cuda:{torch.cuda.current_device()}")
        dist.all_reduce(values, op=dist.ReduceOp.SUM)  # a sync point: every rank must reach it
        values = values.to(device)
    return values
