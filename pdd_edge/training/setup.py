"""Where and how training computes: the device, mixed precision, loader workers and the process
group that torchrun describes.

None of this changes *what* a run trains (its config hash, hence `--resume`, ignores it): a run
started on a GPU may be resumed on a CPU, and a checkpoint written anywhere holds CPU tensors.

torchrun (`torchrun --nproc-per-node N -m pdd_edge distill ...`) sets RANK, LOCAL_RANK,
WORLD_SIZE and the rendezvous address in the environment; `TrainSetup.start` then joins the process
group (NCCL on CUDA, gloo on CPU), puts each rank on `cuda:LOCAL_RANK` where it uses CUDA, and the
training loop wraps the model in DistributedDataParallel. Nothing here launches processes.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from typing import Iterator

import torch

from pdd_edge.errors import PddError
from pdd_edge.training.distributed import DistInfo, dist_info

DEVICE_FORMS = "auto, cpu, cuda, cuda:N or mps"
AMP_CHOICES = ("auto", "bf16", "fp16", "off")
# --compile: torch.compile of the training step's forward and backward ("on"), or that plus CUDA
# graphs ("cudagraphs", torch.compile's mode="reduce-overhead"): a step replayed as one launch.
COMPILE_CHOICES = ("off", "on", "cudagraphs")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def under_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def resolve_device(text: str) -> torch.device:
    """`--device` as a torch.device that this machine has (a usage error otherwise).

    `auto` is CUDA where available (under torchrun: this rank's `cuda:LOCAL_RANK`), else CPU.
    """
    spec = text.strip().lower()
    if not re.fullmatch(r"auto|cpu|mps|cuda(:[0-9]+)?", spec):
        raise PddError(f"--device must be one of {DEVICE_FORMS}; got {text!r}")
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise PddError("--device mps: this machine has no usable Apple GPU (MPS); use --device cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise PddError(f"--device {text}: this machine has no usable CUDA GPU (torch {torch.__version__}, "
                           f"CUDA build {torch.version.cuda or 'none'}); use --device cpu or --device auto")
        count = torch.cuda.device_count()
        if under_torchrun():
            if ":" in spec:
                raise PddError(f"--device {text}: under torchrun every rank uses cuda:LOCAL_RANK; pass --device cuda")
            spec = f"cuda:{local_rank()}"
        index = int(spec.partition(":")[2] or 0)
        if index >= count:
            raise PddError(f"--device {spec}: this machine has {count} CUDA GPU(s), numbered 0 to {count - 1}"
                           + ("; start at most that many processes per node" if under_torchrun() else ""))
        spec = f"cuda:{index}"
    return torch.device(spec)


def resolve_amp(text: str, device: torch.device) -> str:
    """`--amp` for `device`: `auto` is bf16 on a CUDA GPU that supports it and off elsewhere
    (fp16 needs loss scaling and must be asked for; CPU autocast pays only on CPUs with bf16
    matrix instructions and is slower elsewhere, so it is never the default there)."""
    amp = text.strip().lower()
    if amp not in AMP_CHOICES:
        raise PddError(f"--amp must be one of {', '.join(AMP_CHOICES)}; got {text!r}")
    if amp == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "off"
    if amp == "fp16" and device.type == "cpu":
        # PyTorch's CPU float16 kernels are slow paths: measured 70x slower than float32 (issue 22).
        raise PddError("--amp fp16 on the CPU runs many times slower than float32 (no fast float16 CPU kernels); "
                       "use --amp bf16 (CPUs with bfloat16 instructions) or --amp off")
    if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise PddError(f"--amp bf16: {torch.cuda.get_device_name(device)} does not support bfloat16; use --amp fp16")
    return amp


def resolve_compile(text: str, device: torch.device) -> str:
    """`--compile` for `device`: CUDA graphs need CUDA, torch.compile needs a Python it supports and,
    on the CPU, a C++ compiler for the kernels it generates."""
    mode = text.strip().lower()
    if mode not in COMPILE_CHOICES:
        raise PddError(f"--compile must be one of {', '.join(COMPILE_CHOICES)}; got {text!r}")
    if mode == "cudagraphs" and device.type != "cuda":
        raise PddError(f"--compile cudagraphs needs a CUDA GPU (this run trains on {device}); "
                       "use --compile on or --compile off")
    if mode == "on" and device.type not in ("cpu", "cuda"):
        raise PddError(f"--compile on: torch.compile does not support training on {device}; use --compile off")
    if mode != "off":
        import shutil

        import torch._dynamo

        if not torch._dynamo.is_dynamo_supported():
            raise PddError(f"--compile {mode}: torch.compile does not support this Python; use --compile off")
        if device.type == "cpu" and not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
            raise PddError("--compile on: torch.compile on the CPU needs a C++ compiler (c++, g++ or clang++) on "
                           "PATH; install one or use --compile off")
    return mode


def check_fused_sgd(device: torch.device) -> None:
    """Ask torch whether it has a fused SGD for `device` (CUDA, and the CPU in recent versions)."""
    try:
        torch.optim.SGD([torch.zeros(1, device=device, requires_grad=True)], lr=0.1, fused=True)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise PddError(f"--fused-sgd: torch {torch.__version__} has no fused SGD on {device} ({exc}); "
                       "drop --fused-sgd") from None


@dataclass(frozen=True)
class TrainSetup:
    """How training runs. The default is one CPU process in float32, which is what library callers
    and tests get unless they ask otherwise."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    amp: str = "off"  # "off", "bf16" or "fp16" (resolved: never "auto")
    workers: int | None = None  # DataLoader workers of streamed image folders (None: the source's default)
    sync_bn: bool = False  # SyncBatchNorm across ranks (CUDA under torchrun only)
    # Opt-in speed-ups (issue 25), off by default until measured on a GPU. They change the float
    # rounding (not bit-identical to the default path), not what is trained: not in the config hash.
    channels_last: bool = False  # NHWC weights and batches (tensor-core convolutions on GPUs)
    fused_sgd: bool = False  # torch's fused SGD kernel instead of the per-tensor (CPU) / foreach (CUDA) one
    compile: str = "off"  # one of COMPILE_CHOICES

    @classmethod
    def from_options(cls, device: str = "auto", amp: str = "auto", workers: int | None = None,
                     sync_bn: bool = False, channels_last: bool = False, fused_sgd: bool = False,
                     compile: str = "off") -> "TrainSetup":
        """Check the options before any work (no process group is joined yet)."""
        dev = resolve_device(device)
        if workers is not None and workers < 0:
            raise PddError(f"--workers must be 0 (load in the training process) or more, got {workers}")
        if sync_bn and not (under_torchrun() and dev.type == "cuda"):
            raise PddError("--sync-bn needs CUDA GPUs under torchrun (PyTorch's SyncBatchNorm has no CPU version); "
                           "drop --sync-bn")
        if fused_sgd:
            check_fused_sgd(dev)
        return cls(device=dev, amp=resolve_amp(amp, dev), workers=workers, sync_bn=sync_bn,
                   channels_last=channels_last, fused_sgd=fused_sgd, compile=resolve_compile(compile, dev))

    def place(self, module: torch.nn.Module) -> torch.nn.Module:
        """`module` on the device, in channels-last memory format with --channels-last."""
        if self.channels_last:
            return module.to(self.device, memory_format=torch.channels_last)
        return module.to(self.device)

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        """A training batch in the memory format of the placed modules."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def sgd_options(self) -> dict:
        """Keyword arguments of torch.optim.SGD for this setup (torch picks foreach on CUDA itself)."""
        return {"fused": True} if self.fused_sgd else {}

    def compiled(self, step):
        """`step` (a training task) as --compile asks: itself, or compiled by torch.compile."""
        if self.compile == "off":
            return step
        return torch.compile(step, mode="reduce-overhead" if self.compile == "cudagraphs" else None)

    @property
    def dist(self) -> DistInfo:
        return dist_info()

    def rank_batch(self, batch_size: int) -> int:
        """Each rank's share of the global `--batch-size` (it must divide evenly)."""
        world = self.dist.world
        if batch_size % world:
            raise PddError(f"--batch-size {batch_size} is the global batch and must divide evenly among the {world} "
                           f"processes; use a multiple of {world}, e.g. {max(world, batch_size // world * world)}")
        return batch_size // world

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision for the forward passes (a no-op with amp off)."""
        if self.amp == "off":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=_DTYPES[self.amp])

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling, enabled for fp16 only (bf16 has float32's exponent range)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")

    def describe(self) -> str:
        info = self.dist
        where = f"{self.device}" + (f", rank {info.rank} of {info.world}" if info.enabled else "")
        extras = [name for name, on in (("channels-last", self.channels_last), ("fused SGD", self.fused_sgd),
                                         (f"compile {self.compile}", self.compile != "off")) if on]
        return f"{where}, " + ("float32" if self.amp == "off" else f"mixed precision {self.amp}") + \
            "".join(f", {e}" for e in extras)

    @contextlib.contextmanager
    def started(self) -> Iterator["TrainSetup"]:
        """Join torchrun's process group for the duration of a command (nothing without torchrun)."""
        import torch.distributed as dist

        joined = False
        if under_torchrun() and not dist.is_initialized():
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            try:
                dist.init_process_group(backend=backend)
            except (RuntimeError, ValueError) as exc:
                raise PddError(f"could not join torchrun's process group ({backend}): {exc}") from None
            joined = True
        try:
            yield self
        finally:
            if joined and dist.is_initialized():
                dist.destroy_process_group()
