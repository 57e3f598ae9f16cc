"""Latency tables and the latency budget (issue 15): geometry, interpolation, fitting, caching,
the budget's gradient, prune's latency ceiling, and the CLI's refusals."""

from __future__ import annotations

import json
import random

import pytest
import torch

from pdd_edge import zoo
from pdd_edge.errors import PddError
from pdd_edge.latency import layers, multiple
from pdd_edge.latency.model import Grid, LatencyModel, load
from pdd_edge.latency.table import grid_counts, layer_plan, random_plan
from pdd_edge.latency.target import LatencyTarget, check_fits
from pdd_edge.nn.budget import LatencyBudget, deployed_counts
from pdd_edge.nn.pruning import plan_from_masks
from pdd_edge.profiling.targets import load_target, parse_target
from pdd_edge.zoo.masks import attach_masks, get_masks, open_counts
from tests.helpers import assert_usage_error, files_in, run_cli


def synthetic_table(model, input_hw=(32, 32), channel_multiple=8, ns_per_mac=1e-6, offset_ms=0.05) -> LatencyModel:
    """A latency model whose grids hold MACs x ns_per_mac (no measurement): exact for any counts
    on the grid, and bilinear (hence exact) in between for ungrouped layers."""
    names, plans = layer_plan(model, input_hw, channel_multiple)
    grids = {}
    for key, p in plans.items():
        s = p["shape"]
        area = s.out_hw[0] * s.out_hw[1] * s.kernel[0] * s.kernel[1] if s.op == "conv" else s.rows

        def cost(ci, co):
            return ci * co * area * ns_per_mac / (s.groups if not s.grouped else co // (s.full_out // s.groups))

        if s.grouped:
            ms = ((*[cost(s.channels(co // (s.full_out // s.groups))[0], co) for co in p["counts_out"]],),)
        else:
            ms = tuple(tuple(cost(ci, co) for co in p["counts_out"]) for ci in p["counts_in"])
        grids[key] = Grid(s, p["counts_in"], p["counts_out"], ms)
    key = {"target": "synthetic", "model": "resnet20", "input_size": list(input_hw), "batch_size": 1, "threads": 1,
           "onnxruntime": "test"}
    return LatencyModel(key, names, grids, 1.0, offset_ms, channel_multiple,
                        {"dense": {"measured_ms": 1.0}, "error": {"check_max_abs_pct": 0.0}})


def test_grid_is_exact_on_measured_counts_bilinear_between_and_zero_without_channels():
    shape = layers.Shape("conv", 32, 64, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), (8, 8))
    g = Grid(shape, (16, 32), (32, 64), ((1.0, 2.0), (3.0, 5.0)))
    assert g(16, 32) == 1.0 and g(32, 64) == 5.0 and g(16, 64) == 2.0
    assert g(24, 48) == pytest.approx((1.0 + 2.0 + 3.0 + 5.0) / 4)
    assert g(8, 32) == pytest.approx(0.5)  # halfway to the virtual "no channel" point
    assert g(0, 64) == 0.0 and g(32, 0) == 0.0


def test_grid_prediction_carries_the_gradient_of_a_soft_count():
    shape = layers.Shape("conv", 32, 64, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), (8, 8))
    g = Grid(shape, (16, 32), (32, 64), ((1.0, 2.0), (3.0, 5.0)))
    c_in = torch.tensor(20.0, requires_grad=True)
    value = g(c_in, torch.tensor(64.0))
    value.backward()
    assert float(value.detach()) == pytest.approx(2.0 + 0.25 * 3.0)
    assert float(c_in.grad) == pytest.approx((5.0 - 2.0) / 16)


def test_grid_counts_are_shares_rounded_up_to_the_channel_multiple():
    assert grid_counts(64, 1) == (8, 16, 32, 48, 64)
    assert grid_counts(64, 16) == (16, 32, 48, 64)
    assert grid_counts(16, 16) == (16,)
    assert grid_counts(10, 16) == (10,)  # a layer narrower than the multiple keeps its width


@pytest.mark.parametrize("name", ["resnet20", "vgg11", "torchvision:mobilenet_v2"])
def test_layer_widths_and_probed_geometry_give_the_cost_formula_macs(name):
    """The latency table sees exactly the layers the MACs formula counts, with the same widths."""
    model = zoo.build(name, input_size=(32, 32))
    rng = random.Random(0)
    counts = {p: rng.randint(1, n) for p, n in model.mask_points().items()}
    widths = model.layer_widths(counts)
    shapes = layers.probe(model, (32, 32), set(widths))
    macs = 0
    for layer, (c_in, c_out) in widths.items():
        s = shapes[layer]
        if s.op == "linear":
            macs += c_in * c_out * s.rows
        else:
            per_out = s.full_in // s.groups if s.grouped else c_in
            macs += per_out * c_out * s.kernel[0] * s.kernel[1] * s.out_hw[0] * s.out_hw[1]
    assert macs == int(model.cost(counts, (32, 32)).macs)


def test_layer_onnx_runs_with_the_requested_channels_and_output_size():
    import numpy as np
    import onnxruntime as ort

    shape = layers.Shape("conv", 32, 32, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), (16, 16), groups=32)
    session = ort.InferenceSession(layers.layer_onnx(shape, 16, 16).SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"input": np.zeros(layers.input_shape(shape, 16, 3), np.float32)})
    assert y.shape == (3, 16, 8, 8) and shape.out_hw == (8, 8)


def test_channel_multiple_is_the_smallest_whose_widths_no_wider_width_beats():
    widths = list(range(8, 41))
    # Latency grows with width, except that multiples of 16 are fast (a blocked kernel).
    ms = [0.01 * c * (0.6 if c % 16 == 0 else 1.0) for c in widths]
    rows = multiple.sweep_rows(widths, ms, batch=1)
    assert multiple.recommend(rows) == 16
    assert next(r for r in rows if r["width"] == 24)["dominated_by"] == 32
    assert multiple.recommend(multiple.sweep_rows(widths, [0.01 * c for c in widths], batch=1)) == 1


def test_target_channel_multiple_is_parsed_and_checked():
    assert load_target("x86-server").channel_multiple == 16
    assert load_target("rpi4").channel_multiple is None  # not measured on the board: no rounding
    assert parse_target("channel_multiple = 8", source="t.toml", default_name="t").channel_multiple == 8
    with pytest.raises(PddError, match="'channel_multiple' must be an integer from 1 to 1024, got 0"):
        parse_target("channel_multiple = 0", source="t.toml", default_name="t")


def test_latency_model_sums_layers_scales_and_refuses_another_network():
    model = zoo.build("resnet20")
    table = synthetic_table(model)
    full = model.layer_widths(model.mask_points())
    assert table.predict(full) == pytest.approx(int(model.cost(model.mask_points(), (32, 32)).macs) * 1e-6 + 0.05)
    with pytest.raises(PddError, match="made for another network"):
        table.predict(zoo.build("resnet32").layer_widths(zoo.build("resnet32").mask_points()))


def test_table_file_round_trips_and_bad_files_are_one_line_errors(tmp_path):
    model = zoo.build("resnet20")
    table = synthetic_table(model)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(table.to_dict()))
    again = load(path)
    assert again.predict(model.layer_widths(model.mask_points())) == table.predict(model.layer_widths(model.mask_points()))
    with pytest.raises(PddError, match="latency table not found"):
        load(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"schema": "something else"}')
    with pytest.raises(PddError, match="is not a latency table"):
        load(tmp_path / "other.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PddError, match="cannot read it as JSON"):
        load(tmp_path / "bad.json")


def test_latency_budget_prices_the_network_prune_deploys_and_pushes_only_where_it_pays():
    model = zoo.build("resnet20")
    table = synthetic_table(model, channel_multiple=16)
    torch.manual_seed(0)
    attach_masks(model, "normal")  # about half of each layer open: 16-wide layers at their floor
    budget = LatencyBudget(0.5, table)
    out = budget(model)
    dense = table.predict(model.layer_widths(model.mask_points()))
    plan = plan_from_masks(model, round_to=16, latency=(table, dense))  # prune's rounding; nothing more to close
    deployed = {p: len(plan.local[p]) for p in model.mask_points()}
    assert float(out["cost_rel"]) == pytest.approx(float(table.predict(model.layer_widths(deployed)) / dense))
    # the open counts themselves would price a network prune does not make
    unrounded = table.predict(model.layer_widths(open_counts(model))) / dense
    assert float(out["cost_rel"]) > float(unrounded) + 0.05
    out["loss"].backward()
    hard = open_counts(model)
    for point, mask in get_masks(model).items():
        width = model.mask_points()[point]
        # a point priced as gone (rounded to 0) has nothing left to buy either
        pays = deployed[point] > 0 and (model.may_vanish(point) or hard[point] > min(width, 16))
        pushed = mask.logits.grad is not None and bool(mask.logits.grad.abs().sum() > 0)
        assert pushed == pays, point
    assert any(model.may_vanish(p) or hard[p] > 16 for p in hard)  # both kinds occur
    assert any(not model.may_vanish(p) and hard[p] <= 16 for p in hard)


def test_deployed_counts_round_to_the_nearest_multiple_with_a_floor_unless_the_point_may_vanish():
    model = zoo.build("resnet20")
    points = model.mask_points()
    vanish = next(p for p in points if model.may_vanish(p))
    fixed16 = next(p for p in points if not model.may_vanish(p) and points[p] == 16)
    fixed64 = next(p for p in points if not model.may_vanish(p) and points[p] == 64)
    counts = dict(points)
    # the nearest multiple (ties up), a floor of 16 unless the point may vanish
    cases = [(vanish, 0, 0), (vanish, 7, 0), (vanish, 8, 16), (vanish, 23, 16), (fixed16, 0, 16), (fixed16, 3, 16),
             (fixed64, 17, 16), (fixed64, 24, 32), (fixed64, 64, 64), (fixed64, 0, 16), (fixed64, 57, 64)]
    for point, n, want in cases:
        got = deployed_counts(model, {**counts, point: n}, 16)[point]
        assert got == want, (point, n)
        soft = torch.tensor(float(n), requires_grad=True)
        value = deployed_counts(model, {**counts, point: soft}, 16)[point]
        assert float(value.detach()) == want
        below_floor = n <= (0 if model.may_vanish(point) else min(points[point], 16))  # incl. at the floor
        assert value.requires_grad != below_floor, (point, n)  # a constant below the floor
        if value.requires_grad:
            value.backward()
            assert float(soft.grad) == 1.0, (point, n)


def test_prune_latency_target_lands_on_the_nearest_width_plan():
    model = zoo.build("resnet20")
    table = synthetic_table(model)
    attach_masks(model, "open")
    dense = table.predict(model.layer_widths(model.mask_points()))

    def predicted(round_to: int, target: float) -> tuple[float, float]:
        plan = plan_from_masks(model, round_to=round_to, latency=(table, target))
        counts = {p: len(plan.local[p]) for p in model.mask_points()}
        assert all(n % round_to == 0 for n in counts.values() if n) and plan.closed_total > 0
        # one group fewer or more closed: neither is nearer the target than the plan prune chose
        return table.predict(model.layer_widths(counts)), plan

    # targets within prune's reach of the (all open) masks: at most 10 % of the dense latency below
    for target in (0.91 * dense, 0.94 * dense, 0.97 * dense):
        got, plan = predicted(8, target)
        assert abs(got - target) <= 0.06 * dense  # within one 8-channel step of this network
        assert "predicted latency target" in plan.notes[-1] and plan.latency_limit is None
        if got > target:  # it stopped above the target because the next group would land further below
            assert any(n.startswith("stopped") for n in plan.notes)


def test_prune_latency_target_far_below_the_masks_closes_at_most_a_tenth_and_records_the_miss():
    # No cliff after training: masks that missed the request by half the latency are not made up
    # for by closing half the network in one step with nothing but a fine-tune to recover.
    from pdd_edge.nn.pruning import MAX_UNRECOVERED_LATENCY

    model = zoo.build("resnet20")
    table = synthetic_table(model)
    attach_masks(model, "open")
    dense = table.predict(model.layer_widths(model.mask_points()))
    plan = plan_from_masks(model, round_to=8, latency=(table, 0.45 * dense))
    got = table.predict(model.layer_widths({p: len(plan.local[p]) for p in model.mask_points()}))
    stop = (1 - MAX_UNRECOVERED_LATENCY) * dense
    assert stop - 0.06 * dense <= got <= stop + 0.06 * dense and plan.closed_total > 0
    assert plan.latency_limit == {"requested_ms": pytest.approx(0.45 * dense), "masks_predicted_ms": pytest.approx(dense),
                                  "stopped_at_ms": pytest.approx(stop), "max_unrecovered_share": MAX_UNRECOVERED_LATENCY}
    assert any("so the target is missed; distill longer or ask for less" in n for n in plan.notes)


def test_prune_cli_names_the_latency_target_when_it_closes_channels_for_it(tmp_path):
    # Issue 22 item 11: closing channels for a latency target printed `--min-macs-reduction None`
    # and crashed with a TypeError after the pruned file was written.
    from pdd_edge.data import load_dataset
    from pdd_edge import checkpoint as ckpt_io

    model = zoo.build("resnet20")
    attach_masks(model, "open")
    ckpt = tmp_path / "d.pt"
    ckpt_io.save(ckpt, ckpt_io.checkpoint_dict(model, model_name="resnet20", preprocess=load_dataset("digits").preprocess,
                                               dataset="digits"))
    table = tmp_path / "t.json"
    table.write_text(json.dumps(synthetic_table(zoo.build("resnet20")).to_dict()))
    result = run_cli("prune", ckpt, "--latency-table", table, "--target-speedup", "2", "--out", tmp_path / "p.pt")
    assert result.exit_code == 0, result.stdout + result.stderr
    closed = [line for line in result.stdout.splitlines() if "closed" in line]
    assert len(closed) == 1 and closed[0].startswith("latency target ") and "min-macs" not in result.stdout
    assert (tmp_path / "p.pt").is_file()


def test_thinnest_plan_removes_every_vanishing_layer_and_keeps_the_multiple_elsewhere():
    from pdd_edge.latency.table import thinnest_plan

    model = zoo.build("resnet20")
    plan = thinnest_plan(model, 16)
    assert all(v == [] if model.may_vanish(p) else v == list(range(16)) for p, v in plan.items())
    assert set(plan) == set(model.mask_points())


def test_reachable_floor_is_the_measured_thinnest_network_where_the_fit_extrapolates_below_it():
    model = zoo.build("resnet20")
    table = synthetic_table(model)
    dense = table.predict(model.layer_widths(model.mask_points()))
    x20 = LatencyTarget.of(None, 20.0)
    assert x20.reach(table, model)["floor_predicted_ms"] < dense / 20  # the fit alone allows 20x
    table.record["floor"] = {"measured_ms": dense / 4, "predicted_ms": 0.0}
    with pytest.raises(PddError, match=r"--target-speedup 20 is out of reach on synthetic: the best the student's "
                                       r"structures can reach is .* \(4\.00x the unpruned"):
        x20.reach(table, model)
    assert LatencyTarget.of(None, 3.0).reach(table, model)["floor_predicted_ms"] == pytest.approx(dense / 4)
    assert LatencyTarget.of(dense / 3, None).reach(table, model)["requested_ms"] == pytest.approx(dense / 3)
    with pytest.raises(PddError, match="is not below the unpruned network's"):
        LatencyTarget.of(dense * 2, None).reach(table, model)


@pytest.mark.parametrize("ms, speedup, table, message", [
    (0.2, 2.0, "t.json", "give --target-latency-ms or --target-speedup, not both"),
    (0.0, None, "t.json", "--target-latency-ms must be a positive number of milliseconds, got 0.0"),
    (float("inf"), None, "t.json", "--target-latency-ms must be a positive number of milliseconds, got inf"),
    (None, 1.0, "t.json", "--target-speedup must be above 1 (e.g. 2 for twice as fast), got 1.0"),
    (None, float("nan"), "t.json", "--target-speedup must be above 1"),
    (None, 2.0, None, "a latency target needs the device's latency table"),
])
def test_latency_target_options_are_refused_in_one_place(ms, speedup, table, message):
    with pytest.raises(PddError) as exc:
        LatencyTarget.of(ms, speedup, table)
    assert message in str(exc.value)


def test_latency_target_is_none_without_options_and_spells_itself_as_the_command_line():
    assert LatencyTarget.of(None, None, None) is None
    assert LatencyTarget.of(None, 2.0).option() == "--target-speedup 2"
    assert LatencyTarget.of(0.25, None).option() == "--target-latency-ms 0.25"
    assert LatencyTarget.of(None, 2.0).requested_ms(0.8) == pytest.approx(0.4)
    assert LatencyTarget.of(0.25, None).requested_ms(0.8) == 0.25


def test_a_table_that_does_not_fit_the_run_names_the_first_mismatch_and_how_to_remake_it():
    table = synthetic_table(zoo.build("resnet20"))
    table.key["num_classes"] = 10
    assert check_fits(table, "t.json", model="resnet20", input_hw=(32, 32), num_classes=10) is table
    cases = [({"model": "resnet32"}, "t.json is for model resnet20, this run needs resnet32: make one with "
                                     "`pdd-edge latency-table resnet32`"),
             ({"input_hw": (64, 64)}, "t.json is for input size [32, 32], this run needs [64, 64]: make one with "
                                      "`pdd-edge latency-table resnet20 --input-size 64,64`"),
             ({"target": "rpi4"}, "this run needs rpi4: make one with `pdd-edge latency-table resnet20 --target rpi4`"),
             ({"num_classes": 100}, "is for num classes 10, this run needs 100: make one with "
                                    "`pdd-edge latency-table resnet20 --num-classes 100`")]
    for wanted, message in cases:
        with pytest.raises(PddError) as exc:
            check_fits(table, "t.json", **wanted)
        assert message in str(exc.value), str(exc.value)


def test_random_plans_keep_multiples_of_the_channel_multiple_and_may_remove_blocks():
    model = zoo.build("resnet20")
    plan = random_plan(model, 0.5, 8, random.Random(1))
    assert all(len(v) % 8 == 0 and (len(v) >= 8 or model.may_vanish(p)) for p, v in plan.items())
    assert plan != random_plan(model, 0.5, 8, random.Random(2))
    thin = [random_plan(model, 0.3, 8, random.Random(k)) for k in range(5)]
    assert any(not v for p in thin for v in p.values())  # some inner layers removed: calibrated too
    assert all(v for p in thin for k, v in p.items() if not model.may_vanish(k))


# --- the command line ------------------------------------------------------------------------

@pytest.mark.slow
def test_latency_table_measures_fits_caches_and_reuses(tmp_path, monkeypatch):
    monkeypatch.setenv("PDD_EDGE_CACHE", str(tmp_path / "cache"))
    first = run_cli("latency-table", "resnet20", "--threads", "1", "--min-runs", "5", "--min-time", "0", "--json")
    assert first.exit_code == 0, first.stderr
    table = json.loads(first.stdout)
    assert not table["reused"] and table["key"]["threads"] == 1 and table["key"]["batch_size"] == 1
    assert table["channel_multiple"] in multiple.MULTIPLES and table["sweep"]  # local has no channel_multiple
    assert [n["kind"] for n in table["networks"]] == ["dense"] + ["fit"] * 4 + ["check"] * 4 + ["floor"]
    floor = table["networks"][-1]
    assert floor["measured_ms"] > 0 and table["floor"]["measured_ms"] == floor["measured_ms"]
    assert floor["measured_ms"] < table["dense"]["measured_ms"] and floor["layers"] < 20  # blocks gone
    assert len(table["layers"]) == 20  # 19 convs and the classifier
    files = files_in(tmp_path / "cache")
    assert len(files) == 1 and files[0].startswith("local-resnet20-32x32-b1-t1-ort")
    second = run_cli("latency-table", "resnet20", "--threads", "1", "--json")
    assert second.exit_code == 0 and json.loads(second.stdout)["reused"]


def test_latency_table_for_another_device_refuses_before_measuring(tmp_path, monkeypatch):
    monkeypatch.setenv("PDD_EDGE_CACHE", str(tmp_path / "cache"))
    result = run_cli("latency-table", "resnet20", "--target", "rpi4")
    assert_usage_error(result, "is not rpi4")
    assert "--remote USER@HOST" in result.stderr and files_in(tmp_path) == []


def test_latency_table_refuses_to_overwrite_a_file_that_is_not_a_table(tmp_path):
    precious = tmp_path / "notes.json"
    precious.write_text('{"mine": true}')
    result = run_cli("latency-table", "resnet20", "--out", precious)
    assert_usage_error(result, "exists and is not a latency table")
    assert precious.read_text() == '{"mine": true}'


def test_distill_latency_budget_usage_errors(digits_teacher, tmp_path):
    base = ("distill", "--student", "resnet20", "--teacher-weights", digits_teacher, "--out", tmp_path / "d", "--epochs", "1")
    assert_usage_error(run_cli(*base, "--target-latency-ms", "0.2"), "needs the device's latency table")
    table = tmp_path / "t.json"
    table.write_text(json.dumps(synthetic_table(zoo.build("resnet20")).to_dict()))
    assert_usage_error(run_cli(*base, "--latency-table", table, "--target-speedup", "2", "--target-macs-reduction", "0.5"),
                       "give one budget")
    assert_usage_error(run_cli(*base, "--latency-table", table, "--target-speedup", "0.5"), "must be above 1")
    assert_usage_error(run_cli(*base, "--latency-table", table, "--target-latency-ms", "0.0001"), "out of reach")
    assert files_in(tmp_path / "d") == []


def test_compress_latency_target_for_a_foreign_device_fails_before_training(tmp_path):
    result = run_cli("compress", "--student", "resnet20", "--teacher", "resnet20", "--target", "rpi4",
                     "--target-speedup", "2", "--out", tmp_path / "run")
    assert_usage_error(result, "make the table on the device")
    assert files_in(tmp_path) == []


@pytest.mark.parametrize("args, message", [
    (("--num-classes", "0"), "--num-classes must be positive"),
    (("--threads", "0"), "--threads must be from 1 to"),
    (("--threads", "100000"), "--threads must be from 1 to"),
    (("--batch-size", "0"), "--batch-size must be positive"),
    (("--target", "pi9000"), "unknown target 'pi9000'"),
])
def test_latency_table_bad_options_are_usage_errors_before_measuring(tmp_path, args, message):
    result = run_cli("latency-table", "resnet20", "--out", tmp_path / "t.json", *args)
    assert_usage_error(result, message)
    assert files_in(tmp_path) == []


def test_prune_latency_target_without_table_and_missing_table_are_usage_errors(tmp_path):
    ckpt = tmp_path / "masked.pt"
    ckpt.write_bytes(b"not read: the options fail first")
    assert_usage_error(run_cli("prune", ckpt, "--out", tmp_path / "p.pt", "--target-latency-ms", "0.2"),
                       "needs the device's latency table")
    assert ckpt.read_bytes() == b"not read: the options fail first" and not (tmp_path / "p.pt").exists()


def test_distill_with_a_missing_latency_table_is_a_usage_error(digits_teacher, tmp_path):
    result = run_cli("distill", "--student", "resnet20", "--teacher-weights", digits_teacher, "--out", tmp_path / "d",
                     "--latency-table", tmp_path / "none.json", "--target-speedup", "2")
    assert_usage_error(result, "latency table not found")
    assert files_in(tmp_path) == []


def test_compress_latency_options_are_checked_before_training(tmp_path):
    base = ("compress", "--student", "resnet20", "--teacher", "resnet20", "--out", tmp_path / "run")
    assert_usage_error(run_cli(*base, "--target-speedup", "2", "--target-macs-reduction", "0.5"), "give one budget")
    other = tmp_path / "t.json"
    table = synthetic_table(zoo.build("resnet20")).to_dict()
    table["key"] |= {"model": "resnet32", "target": "local"}
    other.write_text(json.dumps(table))
    assert_usage_error(run_cli(*base, "--target-speedup", "2", "--latency-table", other), "is for model resnet32")
    assert_usage_error(run_cli(*base, "--latency-table", other), "--latency-table is for a latency target")
    assert not (tmp_path / "run").exists()


def test_quantize_unknown_format_is_a_usage_error(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    assert_usage_error(run_cli("quantize", model, "--out", tmp_path / "q.onnx", "--format", "qint"), "unknown INT8 format")
    assert model.read_bytes() == b"x" and not (tmp_path / "q.onnx").exists()


@pytest.mark.slow
def test_compress_with_a_speedup_target_measures_the_table_and_reports_requested_predicted_measured(tmp_path, monkeypatch):
    monkeypatch.setenv("PDD_EDGE_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    # three teacher epochs: after one (all warm-up) the teacher is at chance, which compress refuses
    result = run_cli("compress", "--student", "resnet20", "--teacher", "resnet20", "--teacher-epochs", "3",
                     "--distill-epochs", "2", "--finetune-epochs", "1", "--no-quantize", "--target-speedup", "1.5",
                     "--profile-min-runs", "5", "--profile-min-time", "0", "--out", run)
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((run / "manifest.json").read_text())
    assert list(manifest["stages"])[:4] == ["latency", "teacher", "baseline", "distill"]
    table = load(run / "latency" / "table.json")
    assert table.key["target"] == "local" and table.key["num_classes"] == 10
    prune = json.loads((run / "prune" / "pruned.json").read_text())
    assert prune["round_to"] == table.channel_multiple  # the measured multiple, local has none
    assert prune["latency"]["target_ms"] == pytest.approx(table.predict(
        zoo.build("resnet20").layer_widths(zoo.build("resnet20").mask_points())) / 1.5)
    report = json.loads((run / "report" / "report-local.json").read_text())
    lb = report["latency_budget"]
    assert lb["requested_ms"] == prune["latency"]["target_ms"] and lb["predicted_ms"] == prune["latency"]["predicted_ms"]
    assert lb["measured_ms"] == report["variants"]["pruned"]["latency_p50_ms"]
    assert "## Latency target" in (run / "report" / "report-local.md").read_text()


def test_channel_multiple_here_is_declared_measured_once_per_machine_or_none_for_another_device(tmp_path, monkeypatch):
    from pdd_edge.latency import multiple

    monkeypatch.setenv("PDD_EDGE_CACHE", str(tmp_path))
    assert multiple.here(load_target("x86-server")) == 16  # declared: nothing measured
    assert multiple.here(load_target("rpi4")) is None  # another device (this machine is not a Raspberry Pi)
    calls = []

    def fake_measure(settings, batch, remote=None):
        calls.append((settings.threads, batch))
        return 8, [{"width": 8, "p50_ms": 0.01, "dominated_by": None}]

    monkeypatch.setattr(multiple, "measure_multiple", fake_measure)
    one_thread = parse_target('name = "one"\nthreads = 1\n', source="test", default_name="one")
    assert multiple.here(one_thread) == 8 and multiple.here(one_thread) == 8
    assert calls == [(1, 1)]  # measured once, then read from the cache
    (cached,) = (tmp_path / "latency").glob("multiple-one-b1-t1-*.json")
    assert json.loads(cached.read_text())["multiple"] == 8
    cached.write_text("not json")  # a damaged cache file is measured again
    assert multiple.here(one_thread) == 8 and len(calls) == 2


@pytest.mark.slow
def test_channel_multiple_measured_here_is_a_clean_multiple_of_the_sweep(tmp_path, monkeypatch):
    from pdd_edge.latency import multiple

    monkeypatch.setenv("PDD_EDGE_CACHE", str(tmp_path))
    got = multiple.here(parse_target('name = "one"\nthreads = 1\n', source="test", default_name="one"))
    assert got in multiple.MULTIPLES
    record = json.loads(next((tmp_path / "latency").glob("multiple-one-*.json")).read_text())
    assert [r["width"] for r in record["sweep"]] == list(multiple.SWEEP_WIDTHS) and record["multiple"] == got


def test_compress_refuses_an_unreachable_speedup_before_training_with_the_best_reachable_figure(tmp_path, monkeypatch):
    monkeypatch.setenv("PDD_EDGE_CACHE", str(tmp_path / "cache"))
    model = zoo.build("resnet20")
    table = synthetic_table(model)
    dense = table.predict(model.layer_widths(model.mask_points()))
    given = table.to_dict()
    given["key"] |= {"target": "local", "num_classes": 10}  # made for this run's first target and classes
    given["floor"] = {"measured_ms": dense / 4, "predicted_ms": 0.0}  # the thinnest network: 4x at most
    (tmp_path / "t.json").write_text(json.dumps(given))
    run = tmp_path / "run"
    result = run_cli("compress", "--student", "resnet20", "--teacher", "resnet20", "--teacher-epochs", "1",
                     "--latency-table", tmp_path / "t.json", "--target-speedup", "5", "--out", run)
    assert result.exit_code == 2 and "Traceback" not in result.stderr + result.stdout
    last = result.stderr.strip().splitlines()[-1]  # after the latency stage's progress lines: one error line
    assert last.startswith("error: --target-speedup 5 is out of reach on local: the best the student's structures can "
                           "reach is ") and "(4.00x the unpruned" in last and "ask for at most a 4.00x speed-up" in last
    assert ">> teacher" not in result.stderr  # nothing trained
    assert not run.exists()  # a fresh run refused before any stage finished leaves nothing

