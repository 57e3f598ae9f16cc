"""Model specs: the four ways a command line names a network.

    resnet20                      a network of pdd-edge's CIFAR zoo (`pdd-edge models`)
    torchvision:mobilenet_v2      a classification builder of torchvision.models
    timm:efficientnet_b0          a timm model (optional extra: pip install "pdd-edge[timm]")
    path/to/net.py:build          a function in the user's file that returns an nn.Module

`--model-arg KEY=VALUE` (repeatable) goes to the builder. Values are read as JSON literals
(`0.5`, `true`, `[1, 2]`) and otherwise kept as strings; nothing is evaluated. Weights are never
downloaded: torchvision and timm builders are called without pretrained weights.

A file spec runs that file's code, as `uvicorn module:app` does. pdd-edge does so only when the
command line names the file: a checkpoint records the file's path and sha256 but never causes
the file to run by itself (see `pdd_edge.checkpoint`).
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from pdd_edge.errors import PddError
from pdd_edge.fileio import file_sha256
from pdd_edge.zoo.registry import MODELS

if TYPE_CHECKING:
    from torch import nn

PREFIXES = ("torchvision", "timm")
FORMS = "a zoo name (see `pdd-edge models`), torchvision:NAME, timm:NAME or path/to/file.py:FUNCTION"


@dataclass(frozen=True)
class ModelSpec:
    text: str  # as written on the command line (file paths as given)
    kind: str  # "zoo", "torchvision", "timm" or "file"
    target: str  # zoo name, builder name or function name
    path: Path | None = None  # the user's file, for "file"
    args: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_file(self) -> bool:
        return self.kind == "file"


_TRUSTED: set[tuple[str, str]] = set()  # (resolved file, function) that this process was told to run


def trust(spec: ModelSpec) -> None:
    """Record that the caller (the command line, or code that names the spec) runs this file.
    A checkpoint of a file model rebuilds only from a trusted file (see `pdd_edge.checkpoint`)."""
    if spec.is_file:
        _TRUSTED.add((str(_user_file(spec).resolve()), spec.target))


def trusted_spec(recorded: str, source: Mapping[str, Any] | None) -> str | None:
    """The spec to rebuild a file model's checkpoint with, if this process was told to run that
    file (same function, at the recorded path or the path the command line named); else None."""
    spec = parse(recorded)
    paths = {str(source["path"])} if source and source.get("path") else set()
    if spec.path is not None:
        paths.add(str(spec.path.resolve()))
    for path, func in _TRUSTED:
        if func == spec.target and (path in paths or not paths):
            return f"{path}:{func}"
    named = [f"{path}:{func}" for path, func in _TRUSTED if func == spec.target]
    return named[0] if len(named) == 1 else None


def is_file_spec(text: str) -> bool:
    head, sep, _ = str(text).rpartition(":")
    return bool(sep) and head.endswith(".py")


def parse(text: str, args: Mapping[str, Any] | None = None) -> ModelSpec:
    """A spec from its text, refusing malformed ones with the accepted forms."""
    text = str(text).strip()
    args = dict(args or {})
    if not text:
        raise PddError(f"empty model name; give {FORMS}")
    if is_file_spec(text):
        path, _, func = text.rpartition(":")
        if not func.isidentifier():
            raise PddError(f"model spec {text!r} names no function after the colon; write {path}:FUNCTION")
        return ModelSpec(text, "file", func, Path(path), args)
    if text.endswith(".py"):
        raise PddError(f"model spec {text!r} names a file but no function; write {text}:FUNCTION")
    prefix, sep, name = text.partition(":")
    if sep:
        if prefix.lower() not in PREFIXES:
            raise PddError(f"model spec {text!r} names no known builder {prefix!r}; give {FORMS}")
        if not name:
            raise PddError(f"model spec {text!r} names no model after {prefix}:; e.g. {prefix}:resnet18")
        return ModelSpec(text, prefix.lower(), name, None, args)
    if text.lower() in MODELS:
        return ModelSpec(text.lower(), "zoo", text.lower(), None, MODELS[text.lower()].check_options(args))
    close = difflib.get_close_matches(text.lower(), list(MODELS), n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise PddError(f"unknown model {text!r}; {hint}give a zoo model ({', '.join(MODELS)}), "
                   "torchvision:NAME, timm:NAME or path/to/file.py:FUNCTION")


def parse_model_args(items: list[str] | None) -> dict[str, Any]:
    """`KEY=VALUE` pairs as builder keyword arguments (values as JSON literals, else strings)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise PddError(f"--model-arg {item!r} must be KEY=VALUE with KEY a Python identifier, e.g. width_mult=0.5")
        if key == "num_classes":  # pdd-edge passes it to every builder; a second value would clash
            raise PddError(f"--model-arg {item!r}: the class count is not a --model-arg; it comes from "
                           "--num-classes (models, latency-table) or from the dataset (train, distill, compress)")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = {"True": True, "False": False, "None": None}.get(raw, raw)
        out[key] = value
    return out


def slug(text: str) -> str:
    """A spec as a file-name part: `torchvision_mobilenet_v2`, `net_build-1a2b3c4d` for a file model
    (its content hash, so that an edited file never reuses what the old one produced)."""
    spec = parse(text)
    if spec.is_file:
        return f"{spec.path.stem}_{spec.target}-{file_sha256(_user_file(spec))[:8]}"  # type: ignore[union-attr]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.text)


def source_record(spec: ModelSpec) -> dict[str, Any] | None:
    """What a checkpoint records about a file model's code: its path and content hash."""
    if not spec.is_file:
        return None
    path = _user_file(spec)
    return {"path": str(path.resolve()), "sha256": file_sha256(path)}


def _user_file(spec: ModelSpec) -> Path:
    path = spec.path
    assert path is not None
    if not path.is_file():
        raise PddError(f"model file not found: {path} (from the model spec {spec.text})")
    return path


def build_network(spec: ModelSpec, num_classes: int) -> "nn.Module":
    """The full-width network a spec names, with `num_classes` outputs and fresh weights."""
    from torch import nn

    if spec.kind == "torchvision":
        builder = _torchvision_builder(spec.target)
    elif spec.kind == "timm":
        builder = _timm_builder(spec.target)
    elif spec.kind == "file":
        builder = _file_builder(spec)
    else:
        raise PddError(f"{spec.text} is a zoo model; build it with zoo.build")
    try:
        net = builder(num_classes=num_classes, **spec.args)
    except TypeError as exc:  # an argument the builder does not take
        raise PddError(f"{spec.text} rejected its arguments {dict(spec.args) or ''}: {exc}; check --model-arg") from None
    except (ValueError, AssertionError, KeyError) as exc:
        raise PddError(f"{spec.text} could not be built with {dict(spec.args) or 'no --model-arg'}: {exc}") from None
    if not isinstance(net, nn.Module):
        raise PddError(f"{spec.text} returned {type(net).__name__}, not a torch.nn.Module")
    return net


def _torchvision_builder(name: str) -> Callable[..., Any]:
    import torchvision.models as tvm

    names = tvm.list_models(module=tvm)  # classification builders only (no detection/segmentation)
    if name not in names:
        raise _unknown("torchvision has no classification model", name, names, "torchvision.models.list_models()")

    def build(**kwargs: Any) -> Any:
        return tvm.get_model(name, weights=None, **kwargs)

    return build


def _unknown(what: str, name: str, names: list[str], listing: str) -> PddError:
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return PddError(f"{what} {name!r}{hint}; see {listing}")


def _timm_builder(name: str) -> Callable[..., Any]:
    try:
        import timm
    except ImportError:
        raise PddError(f"timm:{name} needs timm, which is not installed; install it with: "
                       'pip install "pdd-edge[timm]"') from None
    if not timm.is_model(name):
        raise _unknown("timm has no model", name, timm.list_models(), "timm.list_models()")

    def build(**kwargs: Any) -> Any:
        return timm.create_model(name, pretrained=False, **kwargs)

    return build


def _file_builder(spec: ModelSpec) -> Callable[..., Any]:
    path = _user_file(spec)
    module_name = f"pdd_edge_user_model_{file_sha256(path)[:16]}"
    module = sys.modules.get(module_name)
    if module is None:
        loader_spec = importlib.util.spec_from_file_location(module_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise PddError(f"cannot import {path} as Python code")
        module = importlib.util.module_from_spec(loader_spec)
        try:
            loader_spec.loader.exec_module(module)
        except SystemExit as exc:  # would end pdd-edge with the user's exit code and nothing written
            raise _called_exit(f"the model file {path}", exc) from None
        except Exception as exc:  # the user's code: any error is theirs to see, in one line
            raise PddError(f"importing {path} failed: {type(exc).__name__}: {exc}") from None
        sys.modules[module_name] = module
    func = getattr(module, spec.target, None)
    if func is None or not callable(func):
        found = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_") and getattr(v, "__module__", "") == module_name]
        raise PddError(f"{path} has no function {spec.target!r}; it defines: {', '.join(found) or 'nothing callable'}")
    takes_classes = _accepts(func, "num_classes")

    def build(num_classes: int, **kwargs: Any) -> Any:
        try:
            return func(num_classes=num_classes, **kwargs) if takes_classes else func(**kwargs)
        except TypeError:
            raise
        except SystemExit as exc:
            raise _called_exit(f"the model builder {spec.text}", exc) from None
        except Exception as exc:
            raise PddError(f"{spec.text} raised {type(exc).__name__}: {exc}") from None

    return build


def _called_exit(what: str, exc: SystemExit) -> PddError:
    """User code that calls sys.exit() while pdd-edge builds a model: a usage error, never the
    user's exit status (sys.exit(0) would report success with nothing written)."""
    return PddError(f"{what} called sys.exit({exc.code!r}); a model file must define the network and return it, "
                    "not end the program")


def _accepts(func: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
