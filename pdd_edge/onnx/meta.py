"""The metadata pdd-edge stores in an exported ONNX model, and reading ONNX files safely.

Torch-free: used by `export` (writing) and by `evaluate`, `profile` and `report` (reading), which
must also run on an edge board. Keys (all values are strings in ONNX `metadata_props`):

    pdd_edge.format_version   "1"
    pdd_edge.model            zoo name, e.g. "resnet20"
    pdd_edge.num_classes      e.g. "10"
    pdd_edge.classes          JSON list of label names
    pdd_edge.data.preprocess       JSON {"mean": [3 floats], "std": [3 floats], "input_size": [h, w]}
    pdd_edge.keep             JSON channel plan of a pruned model (absent when unpruned)
    pdd_edge.dataset          dataset the model was trained on
    pdd_edge.quantization     JSON record of how an INT8 model was made (absent when FP32):
                              {"method", "format", "weights", "activations", "reduce_range",
                               "calibration": {"dataset", "split", "images", "method"} or null}

A model from elsewhere has none of these; readers fall back to the graph's input shape and to
command-line options.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pdd_edge.data.preprocess import Preprocess
from pdd_edge.errors import PddError

PREFIX = "pdd_edge."
META_VERSION = "1"


@dataclass
class OnnxMeta:
    model: str | None = None
    num_classes: int | None = None
    classes: list[str] | None = None
    preprocess: Preprocess | None = None
    keep: dict[str, list[int]] | None = None
    dataset: str | None = None
    quantization: dict[str, Any] | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def to_props(self) -> dict[str, str]:
        props = {f"{PREFIX}format_version": META_VERSION}
        if self.model is not None:
            props[f"{PREFIX}model"] = self.model
        if self.num_classes is not None:
            props[f"{PREFIX}num_classes"] = str(self.num_classes)
        if self.classes is not None:
            props[f"{PREFIX}classes"] = json.dumps(self.classes)
        if self.preprocess is not None:
            props[f"{PREFIX}preprocess"] = json.dumps(self.preprocess.to_dict())
        if self.keep is not None:
            props[f"{PREFIX}keep"] = json.dumps(self.keep)
        if self.dataset is not None:
            props[f"{PREFIX}dataset"] = self.dataset
        if self.quantization is not None:
            props[f"{PREFIX}quantization"] = json.dumps(self.quantization)
        props.update(self.extra)
        return props

    @classmethod
    def from_props(cls, props: dict[str, str]) -> "OnnxMeta":
        def get_json(key: str) -> Any:
            raw = props.get(PREFIX + key)
            if raw is None:
                return None
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                raise PddError(f"ONNX metadata {PREFIX}{key} is not valid JSON; re-export the model") from None

        pre = get_json("preprocess")
        num_classes = props.get(PREFIX + "num_classes")
        try:
            n = int(num_classes) if num_classes is not None else None
        except ValueError:
            raise PddError(f"ONNX metadata {PREFIX}num_classes is not an integer: {num_classes!r}") from None
        return cls(
            model=props.get(PREFIX + "model"),
            num_classes=n,
            classes=get_json("classes"),
            preprocess=Preprocess.from_dict(pre) if pre is not None else None,
            keep=get_json("keep"),
            dataset=props.get(PREFIX + "dataset"),
            quantization=get_json("quantization"),
            extra={k: v for k, v in props.items() if not k.startswith(PREFIX)},
        )


def load_onnx(path: str | Path):
    """`onnx.load` with one readable error for a missing, truncated or non-ONNX file."""
    import onnx

    p = Path(path)
    if not p.exists():
        raise PddError(f"ONNX model not found: {p}")
    if not p.is_file():
        raise PddError(f"{p} is not a file")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValueError, OSError... for bad files
        raise PddError(f"{p} is not a readable ONNX model (truncated or not ONNX?): {type(exc).__name__}") from None
    if not model.graph.node and not model.graph.output:
        raise PddError(f"{p} is not a readable ONNX model (it has no graph)")
    _load_external_data(model, p)
    return model


def _load_external_data(model, p: Path) -> None:
    """Weights stored beside the graph (models over 2 GB, or saved that way) are read from the
    files the graph names; a missing one is named, not reported as a broken model."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    locations = sorted({ExternalDataInfo(t).location for t in model.graph.initializer if uses_external_data(t)})
    for location in locations:
        data = p.parent / location
        if not data.is_file():
            raise PddError(f"{p} keeps its weights in the external data file {location!r}, which is missing "
                           f"(expected {data}); copy it next to the model")
    if locations:
        try:
            onnx.load_external_data_for_model(model, str(p.parent))
        except Exception as exc:  # a short or unreadable data file
            raise PddError(f"cannot read the external data of {p} ({', '.join(locations)}): "
                           f"{type(exc).__name__}; is the file complete?") from None


def read_meta(model) -> OnnxMeta:
    return OnnxMeta.from_props({p.key: p.value for p in model.metadata_props})


def write_meta(model, meta: OnnxMeta) -> None:
    import onnx

    existing = {p.key: p.value for p in model.metadata_props}
    existing.update(meta.to_props())
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, existing)


def copy_meta(src, dst) -> None:
    """Give `dst` exactly the metadata of `src`: tools such as onnxsim and onnxruntime's
    quantizer add provenance keys of their own, which describe the tool, not the model."""
    import onnx

    del dst.metadata_props[:]
    onnx.helper.set_model_props(dst, {p.key: p.value for p in src.metadata_props})
