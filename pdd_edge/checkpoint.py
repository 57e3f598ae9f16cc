"""Self-describing checkpoints, and loading third-party ones safely.

A pdd-edge checkpoint is a plain dict of tensors, strings and numbers (so `torch.load(...,
weights_only=True)` reads it and no code in a file can run):

    format, format_version        "pdd-edge.checkpoint", 1
    model, arch                   zoo name and builder arguments {"num_classes", "keep"}
    preprocess                    {"mean", "std", "input_size"} the model was trained with
    classes, dataset              label names and the dataset they come from
    state_dict                    weights (mask logits excluded)
    masks                         {mask point: logits} or None
    metrics                       the numbers that chose this checkpoint (e.g. best val top-1)
    record                        free-form provenance (stage, epoch, pruning report, ...)
    pdd-edge.sha256               checksum of everything above, added by `save` and checked by `read`

`keep` is the channel plan of a pruned network, so a pruned checkpoint rebuilds itself with no
hand-typed channel lists. Third-party files (a bare state dict, `{"state_dict": ...}`, keys with
DataParallel's `module.` prefix) load when the caller names the zoo model.

Every dict pdd-edge saves (checkpoints and training states) carries the sha256 of its content:
torch's zip reader checks no CRC, so bytes flipped on disk would otherwise load as other weights.
Files without it (older pdd-edge, third-party) load unchecked.

Above the zoo, nn and data: loading rebuilds a zoo model, loads its masks and reads its
preprocessing. What a loaded model says about itself (`CheckpointInfo`) lives in
`data.checkpoint_info`, where choosing a dataset for the model can read it.
"""

from __future__ import annotations

import hashlib
import pickle
import warnings
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from pdd_edge import zoo
from pdd_edge.data.checkpoint_info import CheckpointInfo
from pdd_edge.data.preprocess import Preprocess
from pdd_edge.errors import PddError
from pdd_edge.fileio import atomic_path
from pdd_edge.zoo.masked import MaskedNetwork
from pdd_edge.zoo.protocol import prunable
from pdd_edge.zoo.state_dict import with_metadata

FORMAT = "pdd-edge.checkpoint"
FORMAT_VERSION = 1
# Namespaced, so that a third-party file's own keys are never taken for pdd-edge's checksum.
CHECKSUM = "pdd-edge.sha256"


def checkpoint_dict(
    model: nn.Module,
    *,
    model_name: str,
    preprocess: Preprocess,
    classes: list[str] | None = None,
    dataset: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    masked = MaskedNetwork(model)  # unwraps DDP / DataParallel
    masks = masked.logits()
    mask_keys = {f"{name}.logits" for name in masks}
    state = {k: v.detach().clone() for k, v in masked.net.state_dict().items() if k not in mask_keys}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model_name,
        "arch": masked.arch.arch_args(),
        "preprocess": preprocess.to_dict(),
        "classes": list(classes) if classes is not None else None,
        "dataset": dataset,
        "state_dict": state,
        "masks": masks or None,
        "metrics": dict(metrics or {}),
        "record": dict(record or {}),
    }


def save(path: str | Path, ckpt: Mapping[str, Any]) -> Path:
    """Write `ckpt` atomically, every tensor on the CPU: a checkpoint trained on a GPU loads on a
    board without one."""
    data = on_cpu(dict(ckpt))
    data.pop(CHECKSUM, None)
    data[CHECKSUM] = content_sha256(data)
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return Path(path)


def content_sha256(obj: Any) -> str:
    """sha256 of a checkpoint's content in its (pickle-preserved) order: tensors by dtype, shape
    and bytes, everything else by type and repr. Hashing the values rather than the file keeps
    it independent of torch's zip layout, and costs one pass over the weights (~1 ms per MB)."""
    digest = hashlib.sha256()
    _feed(digest, obj)
    return digest.hexdigest()


def _feed(digest: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        digest.update(f"tensor {t.dtype} {tuple(obj.shape)};".encode())
        digest.update(t.view(torch.uint8).numpy().data)
    elif isinstance(obj, Mapping):
        digest.update(f"map {len(obj)};".encode())
        for key, value in obj.items():
            digest.update(f"{key!r}:".encode())
            _feed(digest, value)
    elif isinstance(obj, (list, tuple)):
        digest.update(f"{type(obj).__name__} {len(obj)};".encode())
        for value in obj:
            _feed(digest, value)
    else:
        digest.update(f"{type(obj).__name__} {obj!r};".encode())


def _verify(raw: Any, p: Path, what: str) -> None:
    """A checksum written by `save` must match the content that was read."""
    if not isinstance(raw, Mapping) or CHECKSUM not in raw:
        return  # older pdd-edge or third-party file: nothing to check against
    content = {k: v for k, v in raw.items() if k != CHECKSUM}
    if raw[CHECKSUM] != content_sha256(content):
        fix = ("delete it to start that training over" if what == "training state"
               else "re-create it with the command that wrote it, or restore a copy")
        raise PddError(f"{what} {p} is corrupted (checksum mismatch: its bytes changed after pdd-edge wrote it); {fix}")


def on_cpu(obj: Any) -> Any:
    """`obj` with every tensor in it (nested dicts, lists, tuples) moved to the CPU."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        moved = type(obj)((k, on_cpu(v)) for k, v in obj.items())  # OrderedDict state dicts stay one
        if hasattr(obj, "_metadata"):  # module versions of a state dict
            moved._metadata = obj._metadata  # type: ignore[attr-defined]
        return moved
    if isinstance(obj, (list, tuple)):
        return type(obj)(on_cpu(v) for v in obj)
    return obj


def read(path: str | Path, what: str = "checkpoint") -> Any:
    """`torch.load` with weights_only=True, turning every failure into one readable line."""
    p = Path(path)
    if not p.exists():
        raise PddError(f"{what} not found: {p}")
    if not p.is_file():
        raise PddError(f"{what} {p} is not a file")
    _sniff(p, what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a damaged file makes torch warn too ("pickle protocol 88"): one line is ours
            raw = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # "Unsupported operand" is a byte of the pickle stream that no pickler writes: damage, not an object.
        if ("weights_only" in str(exc) or "Unsupported global" in str(exc)) and "Unsupported operand" not in str(exc):
            raise PddError(
                f"{what} {p} contains Python objects that are not loaded for safety (weights_only=True); "
                "re-save it as a plain state dict of tensors (a file pdd-edge wrote reads so only when damaged: re-create it)"
            ) from None
        raise PddError(f"{what} {p} is not a readable PyTorch checkpoint (corrupt or truncated?)") from None
    except Exception:  # noqa: BLE001 - damaged bytes surface as any error type from the zip and pickle readers
        raise PddError(f"{what} {p} is not a readable PyTorch checkpoint (corrupt or truncated?)") from None
    _verify(raw, p, what)
    return raw


def _sniff(p: Path, what: str) -> None:
    """Refuse what is not a torch.save file at all before torch.load guesses: its error for random
    bytes reads like a safety refusal ("weights_only"), which sends the user the wrong way."""
    try:
        with p.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise PddError(f"cannot read {what} {p}: {exc.strerror}") from None
    # torch.save writes a zip archive (PK\x03\x04) or, in the legacy format, a pickle (\x80 protocol marker)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):
        return
    looks = " (it looks like an ONNX model: give it to the ONNX commands)" if p.suffix == ".onnx" or head[:1] == b"\x08" else ""
    raise PddError(f"{what} {p} is not a PyTorch checkpoint{looks}; expected a file written by torch.save")


def _strip_prefix(state: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in state.items():
        for prefix in ("module.", "_orig_mod."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def _third_party_state(raw: Any, path: Path) -> dict[str, torch.Tensor]:
    state = raw
    if isinstance(raw, Mapping):
        for key in ("state_dict", "model_state_dict", "model", "net"):
            if isinstance(raw.get(key), Mapping):
                state = raw[key]
                break
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PddError(f"{path} holds no state dict of tensors; expected a pdd-edge checkpoint or a model's state dict")
    return _strip_prefix(state)


def _fit_state(model: nn.Module, state: Mapping[str, torch.Tensor], name: str, path: Path) -> None:
    expected = model.state_dict()
    # BN's step counter is absent from checkpoints of older PyTorch versions; BatchNorm fills it in.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} shape mismatches (e.g. {k}: {tuple(state[k].shape)} vs {tuple(expected[k].shape)})")
        raise PddError(f"{path} does not fit model {name}: " + ", ".join(parts) + "; is it a checkpoint of another architecture?")
    model.load_state_dict(with_metadata(state, model), strict=True)


def load(
    path: str | Path,
    *,
    model_name: str | None = None,
    name_option: str = "--model",
    model_args: Mapping[str, Any] | None = None,
    input_size: tuple[int, int] | None = None,
) -> tuple[nn.Module, CheckpointInfo]:
    """Rebuild the model stored in `path` (eval mode, CPU) and describe it.

    `model_name` is required for third-party files and must agree with a pdd-edge checkpoint;
    `name_option` is the command-line option that gives it (`--teacher` for a teacher's file).
    """
    p = Path(path)
    raw = read(p)
    if isinstance(raw, Mapping) and raw.get("format") == FORMAT:
        return _load_own(raw, p, model_name, name_option)
    if isinstance(raw, Mapping) and raw.get("kind") == "pdd-edge.train-state":
        raise PddError(f"{p} is the resume state of a training run (model, optimizer, RNG), not a model checkpoint; "
                       f"use the run's best checkpoint: {p.parent / 'best.pt'}")
    if model_name is None:
        raise PddError(f"{p} is not a pdd-edge checkpoint; pass {name_option} NAME to load it as a state dict of that model")
    state = _third_party_state(raw, p)
    if zoo.is_zoo(model_name):
        entry = zoo.entry(model_name)
        name, head = entry.name, state.get(entry.classifier_key)
        # The class count comes from the classifier's weight; a file without it fails in _fit_state.
        classes = int(head.shape[0]) if head is not None and head.dim() == 2 else 10
        model = zoo.build(name, num_classes=classes)
    else:  # torchvision / timm / a user's file: its state dict loads as published, under `net.`
        name, state = model_name, {k if k.startswith("net.") else f"net.{k}": v for k, v in state.items()}
        classes = _published_class_count(model_name, state)
        model = zoo.build(name, num_classes=classes, args=model_args, input_size=input_size)
    _fit_state(model, state, name, p)
    model.eval()
    info = CheckpointInfo(model=name, num_classes=classes, keep=None, preprocess=None, third_party=True, path=str(p),
                          arch=_build_args(prunable(model).arch_args()))
    if isinstance(raw, Mapping):
        info.metrics = {k: float(v) for k, v in raw.items() if k in ("best_prec1", "best_acc", "acc") and isinstance(v, (int, float))}
    return model, info


def _published_class_count(spec_text: str, state: Mapping[str, torch.Tensor]) -> int:
    """The class count of a published state dict: the width of the output layer it holds, found
    as the layer whose first dimension follows the builder's `num_classes`."""
    from pdd_edge.zoo import specs

    probe = {f"net.{k}": v.shape for k, v in specs.build_network(specs.parse(spec_text), 7).state_dict().items()}
    for key, shape in probe.items():
        theirs = state.get(key)
        if theirs is not None and len(shape) >= 1 and shape[0] == 7 and tuple(theirs.shape[1:]) == tuple(shape[1:]):
            return int(theirs.shape[0])
    # The builder ignores num_classes: take the last matrix of the file (the classifier, as a rule);
    # if that guess is wrong, the output check of the built model says so.
    matrices = [v for v in state.values() if v.dim() == 2]
    return int(matrices[-1].shape[0]) if matrices else 10


def _build_args(arch: Mapping[str, Any]) -> dict[str, Any]:
    """What `zoo.build` needs besides name, class count and keep (traced models only)."""
    return {k: arch[k] for k in ("args", "input_size", "source") if k in arch}


def _same_model(recorded: str, given: str) -> bool:
    from pdd_edge.zoo import specs

    a, b = specs.parse(recorded), specs.parse(given)
    if a.is_file or b.is_file:  # the file may have moved; its content is checked by sha256
        return a.is_file and b.is_file and a.target == b.target
    return (a.kind, a.target) == (b.kind, b.target)


def _load_own(raw: Mapping[str, Any], p: Path, model_name: str | None, name_option: str) -> tuple[nn.Module, CheckpointInfo]:
    version = raw.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise PddError(f"{p} has checkpoint format version {version}; this pdd-edge reads up to {FORMAT_VERSION}: upgrade pdd-edge")
    try:
        name = str(raw["model"])
        arch = dict(raw["arch"])
        num_classes = int(arch["num_classes"])
        keep = arch.get("keep")
        state = raw["state_dict"]
        preprocess = Preprocess.from_dict(raw["preprocess"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PddError(f"{p} is a damaged pdd-edge checkpoint (missing or malformed field {exc})") from None
    from pdd_edge.zoo import specs

    if model_name is not None and not _same_model(name, model_name):
        # Not "drop the option": it may be required (distill --student) or have a default (compress --teacher).
        runs = " (naming the file allows pdd-edge to run it; check it first)" if specs.is_file_spec(name) else ""
        raise PddError(f"{p} holds a {name}, not a {model_name}: pass {name_option} {name}{runs}")
    build_name = model_name or name
    if specs.is_file_spec(name) and model_name is None:
        # A checkpoint never makes pdd-edge run code: the command line must have named the file.
        trusted = specs.trusted_spec(name, arch.get("source"))
        if trusted is None:
            raise PddError(f"{p} holds a model defined by the user code {name}; pdd-edge runs a model file only "
                           f"when the command line names it: pass {name_option} {name} (after checking the file)")
        build_name = trusted
    model = zoo.build(build_name, num_classes=num_classes, keep=keep, **_build_args(arch))
    _fit_state(model, state, name, p)
    masks = raw.get("masks")
    if masks:
        try:
            loaded = MaskedNetwork.load(model, masks)
        except PddError as exc:
            raise PddError(f"{p}: {exc}") from None
        multiple = (raw.get("record") or {}).get("mask_multiple")
        if isinstance(multiple, int) and not isinstance(multiple, bool) and multiple >= 1:
            loaded.set_multiple(multiple)  # the network as it trained (zoo/masks.py, "trained as deployed")
    model.eval()
    info = CheckpointInfo(
        model=name,
        num_classes=num_classes,
        keep={k: list(v) for k, v in keep.items()} if keep else None,
        preprocess=preprocess,
        classes=raw.get("classes"),
        dataset=raw.get("dataset"),
        metrics=dict(raw.get("metrics") or {}),
        record=dict(raw.get("record") or {}),
        masked=bool(masks),  # loaded above at every mask point, or the load failed
        path=str(p),
        pruned=zoo.is_pruned(model),
        arch=_build_args(arch),
    )
    return model, info
