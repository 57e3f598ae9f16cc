"""`baseline`: the unpruned student, distilled with the same KD loss and no masks.

It trains for as many epochs as distill + finetune together: the fair reference for "did pruning
cost accuracy?" (the report's and the gate's `top1_drop`), and for the MACs the pruning saved.
"""

from __future__ import annotations

from pdd_edge.artifact import RunDir
from pdd_edge.config import CompressConfig
from pdd_edge.stages import StageResult, distill, training_result
from pdd_edge.training.setup import TrainSetup


def run(run: RunDir, cfg: CompressConfig, setup: TrainSetup) -> StageResult:
    dcfg = distill.config(run, cfg, masks=False, epochs=cfg.distill_epochs + cfg.finetune_epochs)
    return training_result(run, "baseline", distill.distill(dcfg, run.training_dir("baseline"), resume="auto", setup=setup))
