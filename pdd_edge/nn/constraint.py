"""The cost constraints of `distill`: MACs (`--target-macs-reduction R`) or latency on a device
(`--target-latency-ms X` / `--target-speedup S` with a latency table). Our addition; pure PDD has none.

Both are one controller (`Constraint`) on a relative cost: MACs over the dense MACs, or the latency
predictor's prediction (latency/predictor.py, a function of the same soft open counts) over its
prediction for the dense network. Below, "MACs" stands for either.

Term: `lambda * macs(masks) / dense_macs`, where `macs(masks)` is the masked network's MAC
count written as a function of per-layer open-channel counts (`model.cost`), each count being a
sum of straight-through gates — so the term has the hard count's value and a gradient that
reaches every mask logit through the same Bi-Real surrogate the distillation loss uses.

`lambda` is not a hand-tuned weight but the output of a PI controller on the constraint error
`e = relative_macs - (1 - R)`: `lambda = gain * e + integral`, `integral += rate * e` after every
step (the integral is the Lagrange multiplier of dual ascent; the proportional part damps its
overshoot). Above the MACs target lambda is positive and closing channels pays; below it lambda
turns negative and re-opening pays. It settles wherever the distillation loss and the constraint
balance, whatever the scale of the KD gradients for this dataset and model.

With `ramp_epochs = k > 0` the target itself is ramped: in epoch e (1-based) the controller aims
at `R * min(1, e / k)`. A student warm-started from a trained network (all masks open) is then
thinned gradually, a few channels per step, instead of losing half its width in the first
epoch; from epoch k on it aims at R itself.

Anti-windup: the integral is clamped to +/- `integral_limit` (default 1). A request the masks
cannot follow (gates pushed beyond the surrogate's reach at |m| > 1, a latency the structures
cannot give) otherwise lets the integral grow every step: a ResNet20 asked for 2x on CIFAR-10
images reached lambda +7.8 and a loss of 598 while its predicted latency stalled, and the
distillation was lost (issue 23). With the clamp the push stays bounded (|lambda| <= gain * |e| + 1)
and recovers within a few steps once the error changes sign, instead of first unwinding what it
accumulated.

The term is also multiplied by `lr0 / lr` (the inverse of the learning-rate schedule's factor
at the epoch's start, step or cosine, warm-up excluded). Otherwise each lr decay would shrink the constraint's push on the masks tenfold, the masks
would freeze wherever they are, and the constraint could not be met by the end of training; with
the compensation the push per step stays constant while the distillation's fades with the
schedule, so the masks settle on the target as the weights converge.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pdd_edge.zoo.masked import MaskedNetwork
from pdd_edge.zoo.masks import deployed_width

# Gains chosen on digits (ResNet20 from a ResNet20 teacher, 10 epochs): targets 0.3, 0.5 and 0.7
# end within the +/- 3 point tolerance; docs/BENCHMARKS.md has the measured trajectories.
DEFAULT_RATE = 0.05  # integral gain, per step
DEFAULT_GAIN = 5.0  # proportional gain
DEFAULT_INTEGRAL_LIMIT = 1.0  # anti-windup: |integral| never exceeds it (see the module docstring)
TOLERANCE_PCT = 3.0  # a checkpoint "meets the constraint" within +/- 3 percentage points


class Constraint:
    """The PI controller on `relative(model)` (a 0-d tensor: cost over the dense cost) that drives
    it to `1 - target_reduction`; `metric` names the epoch record's reduction in percent."""

    metric = "macs_reduction_pct"
    overshoot_meets = False

    def __init__(self, target_reduction: float, rate: float = DEFAULT_RATE, gain: float = DEFAULT_GAIN,
                 ramp_epochs: int = 0, integral_limit: float = DEFAULT_INTEGRAL_LIMIT) -> None:
        self.target_reduction = target_reduction
        self.ramp_epochs = ramp_epochs
        self.current_target = target_reduction
        self.rate = rate
        self.gain = gain
        self.integral_limit = integral_limit
        # On the cost's device once a step ran: reading the cost every step (.item()) would make the
        # host wait for the GPU. float64, the arithmetic of the Python floats it replaced.
        self._integral = torch.zeros((), dtype=torch.float64)
        self.lr_compensation = 1.0
        self.settled = False  # `settle`

    def settle(self) -> None:
        """The widths are fixed (stages/distill.DeployedWidths): the term has nothing left to move.
        It adds zero from now on, and the controller stops. Why: kept as it was, its value (lambda
        times the cost, times lr0/lr) still entered the printed loss, with a zero gradient, and
        climbed to 5.4 by the last epoch of the digits main job as the learning rate vanished."""
        self.settled = True

    @property
    def integral(self) -> float:
        return float(self._integral)

    def relative(self, model: nn.Module) -> torch.Tensor:
        raise NotImplementedError

    def on_epoch_start(self, epoch: int, lr: float, base_lr: float) -> None:
        self.lr_compensation = base_lr / lr
        self.current_target = self.target_at(epoch)

    def target_at(self, epoch: int) -> float:
        """The reduction aimed at in `epoch` (0-based): the ramp, then the target."""
        if self.ramp_epochs <= 0:
            return self.target_reduction
        return self.target_reduction * min(1.0, (epoch + 1) / self.ramp_epochs)

    def __call__(self, model: nn.Module) -> dict[str, torch.Tensor]:
        relative = self.relative(model)
        if self.settled:  # a zero term still in the graph: DDP expects a gradient for every mask
            zero = relative.detach().new_zeros(())
            return {"loss": 0.0 * relative, "cost_rel": relative.detach(), "lambda": zero}
        # The soft count equals the hard count in the forward pass, so `error` is exact.
        error = relative.detach().double() - (1.0 - self.current_target)
        integral = self._integral.to(error.device)
        lam = self.gain * error + integral
        self._integral = (integral + self.rate * error).clamp(-self.integral_limit, self.integral_limit)
        # float32 like the cost, as a Python number's product with it was
        return {"loss": (lam * self.lr_compensation).float() * relative, "cost_rel": relative.detach(),
                "lambda": lam.float()}

    def deviation_pct(self, reduction_pct: float) -> float:
        return reduction_pct - 100.0 * self.target_reduction

    def meets(self, reduction_pct: float) -> bool:
        """An epoch meets the constraint within +/- `TOLERANCE_PCT` points of the target, and also
        beyond it where `overshoot_meets` (a cheaper network is within a budget)."""
        dev = self.deviation_pct(reduction_pct)
        return abs(dev) <= TOLERANCE_PCT or (self.overshoot_meets and dev > 0)

    def selection_key(self, record: dict[str, Any]) -> tuple:
        """Best epoch: highest val top-1 among the epochs that meet the constraint; else the closest to target."""
        reduction = record[self.metric]
        return (1, record["val_top1"]) if self.meets(reduction) else (0, -abs(self.deviation_pct(reduction)))

    def state_dict(self) -> dict[str, float]:
        return {"integral": self.integral}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self._integral = torch.tensor(float(state["integral"]), dtype=torch.float64)


class MacsConstraint(Constraint):
    """MACs of the masked network over the dense network's.

    A MACs target is a budget: an epoch that removed more than asked meets it. With the symmetric
    tolerance, ResNet20 on CIFAR-10 images (warm start, cosine) kept an epoch at -51 % MACs and
    33 % top-1 over the last one at -54 % and 64 %, because the controller, its push scaled by
    lr0/lr, ends a few points past the target as the lr vanishes (docs/BENCHMARKS.md, issue 23).
    A latency request stays two-sided: it promises to land within a tolerance of the request.

    The MACs are those of the widths prune deploys at `multiple` (`deployed_counts`), so that a
    layer at its narrowest deployable width is not pushed on for nothing."""

    overshoot_meets = True

    def __init__(self, target_reduction: float, dense_macs: int, input_hw: tuple[int, int], rate: float = DEFAULT_RATE,
                 gain: float = DEFAULT_GAIN, ramp_epochs: int = 0, multiple: int = 1) -> None:
        super().__init__(target_reduction, rate, gain, ramp_epochs)
        self.dense_macs = dense_macs
        self.input_hw = input_hw
        self.multiple = multiple

    def relative(self, model: nn.Module) -> torch.Tensor:
        masked = MaskedNetwork(model)
        counts = deployed_counts(masked.arch, masked.open_counts(soft=True), self.multiple)
        return masked.arch.cost(counts, self.input_hw).macs / self.dense_macs


def deployed_counts(arch: Any, counts: dict[str, Any], multiple: int) -> dict[str, Any]:
    """The widths `prune` deploys from these open counts under a latency target
    (`zoo.masks.deployed_width`: the nearest multiple, a floor unless the point may vanish). Counts of
    masks trained as deployed at `multiple` are such widths already, and stay what they are.

    Soft counts (0-d tensors) keep a straight-through gradient, except at or below a point's
    floor, where closing channels buys no latency and the gradient is 0. Why (issue 23): pricing
    the open counts as such, a ResNet20 asked for 2x on CIFAR-10 spread its closures over every
    layer, most of them in 16-wide layers that cannot shrink; the masks were predicted at -51 %
    and the network deployed from them at -3 %. Pricing widths rounded *up* instead kept pushing
    while no layer reached the next multiple down, and the masks overshot (-57 % MACs for a -15 %
    latency step, val top-1 14 %).
    """
    out: dict[str, Any] = {}
    for point, width in arch.mask_points().items():
        c = counts[point]
        vanish = arch.may_vanish(point)
        hard = int(c.detach()) if isinstance(c, torch.Tensor) else int(c)
        deployed = deployed_width(hard, width, multiple, vanish)
        if isinstance(c, torch.Tensor):
            floor = deployed_width(0, width, multiple, vanish)  # the narrowest width prune may deploy
            slope = c if hard > floor else c.detach()  # no push at or below the floor
            out[point] = slope + (deployed - slope.detach())
        else:
            out[point] = deployed
    return out


class LatencyConstraint(Constraint):
    """The latency predictor's prediction for the network `prune` deploys from the masks (widths
    rounded to `multiple`, by default the table's channel multiple: `deployed_counts`) over its
    prediction for the dense network.

    `target_reduction` is 1 - requested / predicted dense latency; the record's metric is the
    predicted reduction (`predicted_latency`)."""

    metric = "latency_reduction_pct"

    def __init__(self, target_reduction: float, table: Any, rate: float = DEFAULT_RATE, gain: float = DEFAULT_GAIN,
                 ramp_epochs: int = 0, multiple: int | None = None) -> None:
        super().__init__(target_reduction, rate, gain, ramp_epochs)
        self.table = table  # latency.predictor.LatencyPredictor
        self._multiple = multiple

    @property
    def multiple(self) -> int:
        return self.table.channel_multiple if self._multiple is None else self._multiple

    def relative(self, model: nn.Module) -> torch.Tensor:
        masked = MaskedNetwork(model)
        counts = deployed_counts(masked.arch, masked.open_counts(soft=True), self.multiple)
        return self.table.predict_counts(masked.arch, counts) / float(self.table.predict_counts(masked.arch))


def predicted_latency(masked: MaskedNetwork, table: Any) -> dict[str, float]:
    """The latency predictor's prediction for the network `prune` deploys from the masks (open
    channels rounded to the masks' multiple, else the table's), for epoch records."""
    arch = masked.arch
    multiple = table.channel_multiple if masked.multiple is None else masked.multiple
    predicted = float(table.predict_counts(arch, deployed_counts(arch, masked.open_counts(), multiple)))
    dense = float(table.predict_counts(arch))
    return {"latency_pred_ms": predicted, "latency_reduction_pct": 100.0 * (1 - predicted / dense)}
