"""`TracedModel`: a network from a model spec with its traced mask points, implementing
`zoo.protocol.PrunableModel` (the package doc says how the pieces fit)."""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from pdd_edge.errors import PddError
from pdd_edge.zoo.cost import Cost
from pdd_edge.zoo.traced import count
from pdd_edge.zoo.traced.gates import install_gates, remove_gates
from pdd_edge.zoo.traced.layers import sliceable_dims
from pdd_edge.zoo.traced.slicing import check_keep, current_groups, slice_layers, sliced_positions
from pdd_edge.zoo.traced.trace import trace_groups
from pdd_edge.zoo.traced.verify import check_runs, verify_groups


class TracedModel(nn.Module):
    """A network from a model spec, with PDD mask points found by tracing (see the package doc).

    `net` is built at full width by the caller (from the spec); `keep` (None: full width) prunes
    it to a channel plan, so `TracedModel(build(), keep=checkpoint_keep)` rebuilds a pruned
    network exactly as `prune` made it. State-dict keys are the network's own under `net.`.
    """

    def __init__(self, net: nn.Module, *, name: str, num_classes: int, input_hw: tuple[int, int],
                 keep: Mapping[str, Sequence[int]] | None = None, extra: Mapping[str, Any] | None = None,
                 check_output: bool = True) -> None:
        super().__init__()
        self.name = name
        self.num_classes = num_classes
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.extra = dict(extra or {})  # builder arguments and source, recorded by arch_args
        net.eval()  # trace in eval mode: batch-1 BN statistics would fail on 1x1 feature maps
        example = torch.zeros(1, 3, *self.input_hw)
        check_runs(net, example, name)
        with torch.random.fork_rng(devices=[]):
            groups, refused = trace_groups(net, example, name)
            groups = verify_groups(net, groups, example, refused, name)
        self.full_groups = groups
        self.refused = refused
        widths = sliceable_dims(net)
        full = {g.point: list(range(g.units)) for g in groups}
        self.keep = {k: list(v) for k, v in (keep or full).items()}
        check_keep(self.keep, full, name)
        if keep is not None:
            slice_layers(net, sliced_positions(groups, self.keep, widths))
        self.net = net
        self.groups = current_groups(groups, self.keep, widths)
        self.pdd_masks = nn.ModuleDict({g.key: nn.Identity() for g in groups})
        install_gates(self.net, self.groups, self.pdd_masks)
        self._calls: dict[tuple[int, int], count.Calls] = {}  # by input size, for cost
        if check_output:
            self._check_output()

    def _check_output(self) -> None:
        """Refuse a network whose output is not (N, num_classes) logits in eval and in training
        mode (a tuple of heads, e.g. auxiliary classifiers; another class count because the builder
        ignored num_classes; a feature map)."""
        was = self.net.training
        buffers = {k: b.clone() for k, b in self.net.named_buffers()}  # a training-mode pass moves BN statistics
        try:
            with torch.no_grad():
                self.net.train()
                train_out = self.net(torch.zeros(2, 3, *self.input_hw))
                self.net.eval()
                out = self.net(torch.zeros(1, 3, *self.input_hw))
        finally:
            self.net.train(was)
            with torch.no_grad():
                for k, b in self.net.named_buffers():
                    b.copy_(buffers[k])
        for mode, value in (("", out), (" in training mode", train_out)):
            if not isinstance(value, torch.Tensor):
                raise PddError(f"{self.name} returns {type(value).__name__}{mode}, not a tensor of logits (auxiliary "
                               "heads? e.g. --model-arg aux_logits=false); make forward return (N, classes) logits")
        if tuple(out.shape) != (1, self.num_classes):
            raise PddError(f"{self.name} returns outputs of shape {tuple(out.shape)} for one image; expected (1, "
                           f"{self.num_classes}) logits: does its builder take num_classes?")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    # --- PrunableModel ----------------------------------------------------------------------
    def mask_points(self) -> dict[str, int]:
        return {g.point: g.units for g in self.groups}

    def point_label(self, point: str) -> str:
        """The layer whose output channels define the group, and how many layers share them."""
        group = next(g for g in self.groups if g.point == point)
        others = len({s.module for s in group.slots}) - 1
        return f"{group.root} (+{others} layers)" if others else group.root

    def is_pruned(self) -> bool:
        return any(len(self.keep[g.point]) != g.units for g in self.full_groups)

    def may_vanish(self, point: str) -> bool:
        return False  # a traced group's channels may feed a residual stream or the classifier

    def arch_args(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "keep": self.keep, "input_size": list(self.input_hw), **self.extra}

    def pruned_state(self, local: Mapping[str, Sequence[int]]) -> dict[str, torch.Tensor]:
        net = copy.deepcopy(self.net)
        remove_gates(net)  # the copy's gates are not part of the pruned network
        slice_layers(net, sliced_positions(self.groups, local, sliceable_dims(net)))
        return {f"net.{k}": v for k, v in net.state_dict().items()}

    def layer_widths(self, counts: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
        return count.layer_widths(self.net, self.groups, counts)

    def cost(self, counts: Mapping[str, Any], input_hw: tuple[int, int]) -> Cost:
        """MACs/params when group `point` keeps `counts[point]` units (see `count.cost`)."""
        key = (int(input_hw[0]), int(input_hw[1]))
        if key not in self._calls:  # one forward pass per input size
            self._calls[key] = count.layer_calls(self, self.net, key)
        unmasked = (sum(p.numel() for p in self.parameters() if p.requires_grad)
                    - sum(m.logits.numel() for m in self.pdd_masks.values() if hasattr(m, "logits")))
        return count.cost(self.net, self.groups, counts, self._calls[key], unmasked)
