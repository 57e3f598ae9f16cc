"""The distillation fixes its masks on the widths prune deploys, fitted to the budget (stages/distill.DeployedWidths)."""

import torch

from pdd_edge import zoo
from pdd_edge.nn.constraint import MacsConstraint
from pdd_edge.nn.pruning import plan_from_masks
from pdd_edge.stages.distill import DeployedWidths
from pdd_edge.zoo.masked import MaskedNetwork


def _masked(seed: int = 0) -> MaskedNetwork:
    model = zoo.build("resnet20")
    masked = MaskedNetwork.attach(model, "normal").set_multiple(16)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mask in masked.masks.values():
            mask.logits.copy_(torch.randn(mask.logits.shape, generator=g) + 0.4)  # most channels open
    return masked


def _widths(masked):
    dense = masked.dense_cost((32, 32))["macs"]
    max_macs = int(0.5 * dense)
    constraint = MacsConstraint(0.5, dense, (32, 32), ramp_epochs=3, multiple=16)
    return DeployedWidths(masked, constraint, 3, lambda m: plan_from_masks(m, 16, max_macs, (32, 32))), max_macs


def test_masks_are_fixed_at_the_end_of_the_ramp_on_deployed_widths_fitted_to_the_budget():
    masked = _masked()
    widths, max_macs = _widths(masked)
    before = masked.cost((32, 32)).as_ints()["macs"]
    assert before > max_macs  # the masks have not reached the budget: the fit closes channels
    for epoch in range(3):
        widths.on_epoch_start(epoch, 0.01, 0.01)
        assert all(m.fixed is None for m in masked.masks.values())
    widths.on_epoch_start(3, 0.01, 0.01)
    assert widths.fixed_at == 3 and all(m.fixed is not None for m in masked.masks.values())
    assert masked.cost((32, 32)).as_ints()["macs"] <= max_macs
    for point, count in masked.open_counts().items():
        assert count % 16 == 0 or count == masked.points[point]
    assert any("closed" in n for n in widths.notes) and widths.record()["epoch"] == 4
    fixed = {p: m.fixed.clone() for p, m in masked.masks.items()}
    with torch.no_grad():  # the training goes on; the values may move, the widths do not
        for mask in masked.masks.values():
            mask.logits.mul_(-1)
    widths.on_epoch_start(4, 0.01, 0.01)
    assert all(torch.equal(masked.masks[p].kept(), k) for p, k in fixed.items())
    # prune, reading the saved values, keeps exactly that network
    plan = plan_from_masks(MaskedNetwork.load(zoo.build("resnet20"), masked.logits()).set_multiple(16), 16, max_macs,
                           (32, 32))
    assert plan.closed_total == plan.reopened_total == 0
    assert all(plan.local[p] == torch.nonzero(k).flatten().tolist() for p, k in fixed.items())


def test_fixed_widths_survive_a_resume_and_fixed_epochs_are_chosen_first():
    masked = _masked()
    widths, _ = _widths(masked)
    widths.on_epoch_start(3, 0.01, 0.01)
    state = widths.state_dict()
    resumed_masked = _masked(seed=1)  # other values: the resume state, not the values, says what is fixed
    resumed, _ = _widths(resumed_masked)
    resumed.load_state_dict(state)
    assert resumed.fixed_at == 3 and resumed.notes == widths.notes
    assert all(torch.equal(resumed_masked.masks[p].kept(), m.kept()) for p, m in masked.masks.items())
    early = {"val_top1": 70.0, "macs_reduction_pct": 50.5}  # meets the budget, not fixed yet
    late = {"val_top1": 60.0, "macs_reduction_pct": 50.5, "widths_fixed": True}
    assert widths.selection_key(late) > widths.selection_key(early)
    assert widths.selection_key({**late, "val_top1": 61.0}) > widths.selection_key(late)


def test_a_distillation_shorter_than_the_ramp_leaves_the_masks_free():
    masked = _masked()
    widths, _ = _widths(masked)
    for epoch in range(3):  # a 3-epoch run never starts epoch 3
        widths.on_epoch_start(epoch, 0.01, 0.01)
    assert widths.fixed_at is None and widths.record() == {"epoch": None, "notes": []}


def test_once_the_widths_are_fixed_the_budget_term_adds_zero_and_its_controller_stops():
    masked = _masked()
    widths, _ = _widths(masked)
    constraint = widths.constraint
    out = constraint(masked.net)  # before the fix: a push on the masks
    assert float(out["loss"].detach()) > 0 and float(out["lambda"]) != 0
    integral = constraint.integral
    widths.on_epoch_start(3, 0.0001, 0.01)  # lr0/lr = 100 would scale a live term a hundredfold
    out = constraint(masked.net)
    assert float(out["loss"].detach()) == 0.0 and float(out["lambda"]) == 0.0 and constraint.integral == integral
    out["loss"].backward()  # still in the graph (DDP), with a zero gradient
    grads = [m.logits.grad for m in masked.masks.values() if m.logits.grad is not None]
    assert grads and not any(g.any() for g in grads)
    resumed, _ = _widths(_masked(seed=1))
    resumed.load_state_dict(widths.state_dict())
    assert resumed.constraint.settled
