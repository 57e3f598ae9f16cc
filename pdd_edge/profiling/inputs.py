"""A model's real inputs and their concrete shapes for a batch size.

An ONNX input dimension is static (a number), symbolic ("batch") or unknown. Profiling needs
numbers: the first dimension is the batch and takes the batch size being profiled; any other
free dimension comes from a *sample shape hint* (the shape of one sample, without the batch
dimension), in this order:

1. `--input-shape C,H,W` on the command line,
2. the target's `input_shape`,
3. the model's pdd-edge preprocessing metadata (`input_size` = H, W of a 4-D image input).

An explicit hint (1, 2) applies to inputs of rank len(hint) + 1 and must agree with the
model's static dimensions; a dimension nothing resolves is a clear error. A model whose inputs
differ in shape (an image and a vector, token ids) takes one hint per input instead,
`--input-shape NAME=7`, which overrides the others for that input. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from pdd_edge.errors import PddError

Dim = int | str | None  # static size, symbolic name, or unknown


@dataclass(frozen=True)
class ModelInput:
    name: str
    dims: tuple[Dim, ...]
    dtype: str  # numpy dtype name, e.g. "float32"

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.dims), "dtype": self.dtype}


@dataclass(frozen=True)
class ShapeHint:
    """Sizes of the trailing dimensions of a sample; `explicit` hints must match static dims."""

    sizes: tuple[int, ...]
    source: str  # "--input-shape", "target <name>", "model metadata"
    explicit: bool


def model_inputs(model) -> list[ModelInput]:
    """The inputs a caller must feed: graph inputs that are not initializers (in IR < 4 models
    every weight is also listed as a graph input, with its initializer as default value)."""
    import onnx

    initialized = {init.name for init in model.graph.initializer}
    inputs = []
    for value in model.graph.input:
        if value.name in initialized:
            continue
        if not value.type.HasField("tensor_type"):
            raise PddError(f"input {value.name!r} is not a tensor; profile supports tensor inputs only")
        tensor = value.type.tensor_type
        try:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        except (KeyError, ValueError, TypeError):
            raise PddError(f"input {value.name!r} has an element type profile cannot feed ({tensor.elem_type})") from None
        if not tensor.HasField("shape"):
            raise PddError(f"input {value.name!r} has no shape in the model; re-export it with a shape")
        dims = tuple(_dim(d) for d in tensor.shape.dim)
        inputs.append(ModelInput(value.name, dims, dtype))
    if not inputs:
        raise PddError("the model has no inputs to feed; nothing to profile")
    return inputs


def _dim(d) -> Dim:
    if d.HasField("dim_value") and d.dim_value > 0:
        return int(d.dim_value)
    if d.HasField("dim_param") and d.dim_param:
        return d.dim_param
    return None


def shape_hint(cli_shape: Sequence[int] | None, target_shape: Sequence[int] | None, target_name: str,
               meta_input_size: Sequence[int] | None) -> ShapeHint | None:
    if cli_shape:
        return ShapeHint(tuple(int(v) for v in cli_shape), "--input-shape", True)
    if target_shape:
        return ShapeHint(tuple(int(v) for v in target_shape), f"target {target_name}", True)
    if meta_input_size:
        return ShapeHint(tuple(int(v) for v in meta_input_size), "model metadata", False)
    return None


def resolve_shapes(inputs: Sequence[ModelInput], batch_size: int, hint: ShapeHint | None,
                   per_input: Mapping[str, Sequence[int]] | None = None) -> dict[str, list[int]]:
    """Concrete shape of every input at `batch_size`; PddError naming what cannot be resolved.

    `per_input` maps an input's name to its own sample shape (without batch); it wins over `hint`.
    """
    per_input = dict(per_input or {})
    unknown = sorted(set(per_input) - {inp.name for inp in inputs})
    if unknown:
        raise PddError(f"--input-shape names {', '.join(map(repr, unknown))}, which the model does not have; "
                       f"its inputs are {', '.join(repr(inp.name) for inp in inputs)}")
    return {inp.name: _resolve(inp, batch_size, _own_hint(inp, per_input[inp.name]) if inp.name in per_input else hint)
            for inp in inputs}


def _own_hint(inp: ModelInput, sizes: Sequence[int]) -> ShapeHint:
    if len(sizes) != len(inp.dims) - 1:
        raise PddError(f"input {inp.name!r} {_show(inp.dims)} has {len(inp.dims) - 1} dimension(s) after the batch, "
                       f"but --input-shape {inp.name}= gives {len(sizes)}")
    return ShapeHint(tuple(int(v) for v in sizes), f"--input-shape {inp.name}=", True)


def _resolve(inp: ModelInput, batch_size: int, hint: ShapeHint | None) -> list[int]:
    if not inp.dims:
        return []  # a scalar input
    rank = len(inp.dims)
    first = inp.dims[0]
    if isinstance(first, int) and first != batch_size:
        raise PddError(f"input {inp.name!r} has a fixed batch size of {first}; batch size {batch_size} "
                       "cannot run (re-export the model with a dynamic batch axis)")
    shape = [batch_size]
    # The hint covers the trailing dimensions: an explicit (C, H, W) hint only fits rank-4
    # inputs; the metadata's (H, W) fits the spatial dims of a rank-4 image input.
    fits = hint is not None and (rank == len(hint.sizes) + 1 if hint.explicit else rank == 4)
    for i, dim in enumerate(inp.dims[1:], start=1):
        hinted = hint.sizes[i - (rank - len(hint.sizes))] if fits and i >= rank - len(hint.sizes) else None
        if isinstance(dim, int):
            if hint is not None and hint.explicit and hinted is not None and hinted != dim:
                raise PddError(f"input {inp.name!r} has static shape {_show(inp.dims)}, which does not match "
                               f"{hint.source} {list(hint.sizes)}")
            shape.append(dim)
        elif hinted is not None:
            shape.append(hinted)
        else:
            name = f" ({dim!r})" if isinstance(dim, str) else ""
            raise PddError(f"cannot resolve dimension {i}{name} of input {inp.name!r} {_show(inp.dims)}: "
                           "give --input-shape (one sample, without batch, e.g. 3,32,32; NAME=... for one input) "
                           "or a target with input_shape")
    return shape


def _show(dims: Sequence[Dim]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"
