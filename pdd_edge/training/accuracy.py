"""Top-1 / top-5 accuracy of a PyTorch model on a data source."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pdd_edge.data.dataset import Source
from pdd_edge.data.preprocess import Preprocess
from pdd_edge.training.distributed import DistInfo, all_reduce_sum
from pdd_edge.training.tasks import Normalize


def topk_hits(logits: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """How many rows have their label among the k largest logits, as a tensor on their device."""
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == y[:, None]).any(dim=1).sum()


def topk_correct(logits: torch.Tensor, y: torch.Tensor, k: int) -> int:
    return int(topk_hits(logits, y, k))


@torch.no_grad()
def evaluate(model: nn.Module, source: Source, preprocess: Preprocess, *, batch_size: int = 500,
             info: DistInfo = DistInfo(), device: torch.device | None = None,
             workers: int | None = None) -> dict[str, float]:
    """Accuracy in percent and mean cross-entropy, in float32 on the model's device (the exported
    model is float32, whatever precision trained it); the model is left in eval mode."""
    model.eval()
    device = device or next(model.parameters()).device
    norm = Normalize(preprocess).to(device)
    sums = torch.zeros(4, dtype=torch.float64)  # top1, top5, loss, count
    for x, y in source.batches(batch_size, shuffle=False, augment=None, seed=0, epoch=0,
                               rank=info.rank, world=info.world, device=device, workers=workers):
        logits = model(norm(x))
        sums += torch.tensor([topk_correct(logits, y, 1), topk_correct(logits, y, 5),
                              float(F.cross_entropy(logits, y, reduction="sum")), len(y)], dtype=torch.float64)
    top1, top5, loss, n = all_reduce_sum(sums, info).tolist()
    if n == 0:
        return {"top1": float("nan"), "top5": float("nan"), "loss": float("nan"), "count": 0}
    return {"top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n, "loss": loss / n, "count": int(n)}
