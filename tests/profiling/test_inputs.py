"""Which inputs a model needs, and their concrete shapes per batch size."""

from __future__ import annotations

import pytest
from onnx import TensorProto, helper
from tests.onnx_builders import conv_model, make_model, tensor_input, weight

from pdd_edge.errors import PddError
from pdd_edge.profiling.inputs import model_inputs, resolve_shapes, shape_hint


def test_model_inputs_skips_weights_listed_as_inputs_with_initializers():
    node = helper.make_node("Conv", ["X", "W"], ["Y"], kernel_shape=[1, 1])
    model = make_model([node], [tensor_input("X", ["N", 3, 4, 4]), tensor_input("W", [5, 3, 1, 1])],
                       [tensor_input("Y", [None] * 4)], [weight("W", 5, 3, 1, 1)], opset=7, ir_version=3)

    inputs = model_inputs(model)

    assert [(i.name, i.dims, i.dtype) for i in inputs] == [("X", ("N", 3, 4, 4), "float32")]


def test_model_inputs_rejects_a_model_without_inputs():
    node = helper.make_node("Constant", [], ["Y"], value=weight("c", 2))
    model = make_model([node], [], [tensor_input("Y", [2])])

    with pytest.raises(PddError, match="no inputs"):
        model_inputs(model)


def test_resolve_shapes_puts_batch_size_into_symbolic_first_dim():
    inputs = model_inputs(conv_model(["batch", 3, 32, 32], (4, 3, 3, 3)))

    assert resolve_shapes(inputs, 8, None) == {"X": [8, 3, 32, 32]}


def test_resolve_shapes_fills_spatial_dims_from_metadata_hint():
    inputs = model_inputs(conv_model(["N", 3, "H", "W"], (4, 3, 3, 3)))
    hint = shape_hint(None, None, "local", (24, 20))

    assert resolve_shapes(inputs, 2, hint) == {"X": [2, 3, 24, 20]}


def test_resolve_shapes_prefers_command_line_over_target_hint():
    inputs = model_inputs(conv_model(["N", "C", "H", "W"], (4, 3, 3, 3)))
    hint = shape_hint((3, 16, 16), (3, 64, 64), "board", (32, 32))

    assert resolve_shapes(inputs, 1, hint) == {"X": [1, 3, 16, 16]}
    assert hint.source == "--input-shape"


def test_resolve_shapes_rejects_batch_size_of_a_fixed_batch_model():
    inputs = model_inputs(conv_model([1, 3, 8, 8], (4, 3, 3, 3)))

    with pytest.raises(PddError, match="fixed batch size of 1; batch size 8"):
        resolve_shapes(inputs, 8, None)


def test_resolve_shapes_rejects_explicit_hint_that_contradicts_static_dims():
    inputs = model_inputs(conv_model(["N", 3, 32, 32], (4, 3, 3, 3)))
    hint = shape_hint(None, (3, 224, 224), "rpi4", None)

    with pytest.raises(PddError, match=r"does not match target rpi4 \[3, 224, 224\]"):
        resolve_shapes(inputs, 1, hint)


def test_resolve_shapes_names_the_dimension_it_cannot_resolve():
    inputs = model_inputs(conv_model(["N", 3, "height", "width"], (4, 3, 3, 3)))

    with pytest.raises(PddError, match=r"dimension 2 \('height'\) of input 'X'.*--input-shape"):
        resolve_shapes(inputs, 1, None)


def _image_and_tokens():
    """Two inputs of different ranks and a free non-batch dim: an image and a token sequence."""
    nodes = [helper.make_node("Identity", ["X"], ["Y"]), helper.make_node("Identity", ["ids"], ["Z"])]
    return make_model(nodes, [tensor_input("X", ["N", 3, "H", "W"]), tensor_input("ids", ["N", "T"], TensorProto.INT64)],
                      [tensor_input("Y", [None] * 4), tensor_input("Z", [None] * 2, TensorProto.INT64)])


def test_resolve_shapes_gives_each_named_input_its_own_sample_shape():
    inputs = model_inputs(_image_and_tokens())
    hint = shape_hint((3, 16, 16), None, "local", None)

    assert resolve_shapes(inputs, 4, hint, {"ids": (7,)}) == {"X": [4, 3, 16, 16], "ids": [4, 7]}
    assert resolve_shapes(inputs, 2, None, {"X": (3, 8, 6), "ids": (5,)}) == {"X": [2, 3, 8, 6], "ids": [2, 5]}


def test_resolve_shapes_rejects_a_per_input_shape_for_an_input_the_model_lacks():
    inputs = model_inputs(_image_and_tokens())

    with pytest.raises(PddError, match=r"names 'tokens', which the model does not have; its inputs are 'X', 'ids'"):
        resolve_shapes(inputs, 1, None, {"tokens": (7,)})


def test_resolve_shapes_rejects_a_per_input_shape_of_the_wrong_rank():
    inputs = model_inputs(_image_and_tokens())

    with pytest.raises(PddError, match=r"input 'ids' \[N, T\] has 1 dimension\(s\) after the batch, but --input-shape ids= gives 2"):
        resolve_shapes(inputs, 1, shape_hint((3, 8, 8), None, "local", None), {"ids": (7, 2)})
