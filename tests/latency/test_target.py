"""latency/target.py: a latency target (ms or speed-up), what it can reach, and whether a table fits the run."""

from __future__ import annotations

import pytest

from pdd_edge import zoo
from pdd_edge.errors import PddError
from pdd_edge.latency.target import LatencyTarget, check_fits
from tests.latency.synthetic import synthetic_table


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
