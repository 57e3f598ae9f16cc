"""latency/predictor.py: the grids, the latency predictor they make, and its file."""

from __future__ import annotations

import json

import pytest
import torch

from pdd_edge import zoo
from pdd_edge.errors import PddError
from pdd_edge.latency import layers
from pdd_edge.latency.predictor import Grid, load
from tests.latency.synthetic import synthetic_table


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
