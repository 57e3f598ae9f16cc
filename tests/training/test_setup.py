"""Where training computes: --device/--amp parsing and errors, mixed precision on CPU autocast,
float32 gates and losses, and checkpoints that always hold CPU tensors."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from pdd_edge import checkpoint
from pdd_edge.errors import PddError
from pdd_edge.training.setup import TrainSetup, resolve_amp, resolve_device
from pdd_edge.zoo.masks import ChannelMask
from tests.helpers import files_in, run_cli
from tests.training.test_training_loop import make_fit

NO_CUDA = not torch.cuda.is_available()


@pytest.mark.parametrize("text, device", [("cpu", "cpu"), (" CPU ", "cpu")])
def test_device_names_resolve_to_torch_devices(text, device):
    assert resolve_device(text) == torch.device(device)


@pytest.mark.skipif(not NO_CUDA, reason="checks the CPU-only machine")
def test_auto_device_is_the_cpu_without_cuda():
    assert resolve_device("auto") == torch.device("cpu")
    assert TrainSetup.from_options().amp == "off"  # no autocast by default on a CPU


@pytest.mark.parametrize("text", ["gpu", "cuda:x", "cuda:", "cpu:0", ""])
def test_malformed_devices_name_the_accepted_forms(text):
    with pytest.raises(PddError, match="--device must be one of auto, cpu, cuda, cuda:N or mps"):
        resolve_device(text)


@pytest.mark.skipif(not NO_CUDA, reason="checks the CPU-only machine")
@pytest.mark.parametrize("text", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_is_refused_with_the_way_out(text):
    with pytest.raises(PddError, match=f"--device {text}: this machine has no usable CUDA GPU.*use --device cpu"):
        resolve_device(text)


@pytest.mark.parametrize("amp, expected", [("off", "off"), ("bf16", "bf16"), ("auto", "off")])
def test_amp_choices_on_the_cpu(amp, expected):
    assert resolve_amp(amp, torch.device("cpu")) == expected


@pytest.mark.parametrize("amp", ["fp16", "FP16"])
def test_amp_fp16_on_the_cpu_is_refused_with_the_faster_choices(amp):
    with pytest.raises(PddError, match="--amp fp16 on the CPU runs many times slower .* use --amp bf16 .* or --amp off"):
        resolve_amp(amp, torch.device("cpu"))


def test_unknown_amp_is_refused():
    with pytest.raises(PddError, match="--amp must be one of auto, bf16, fp16, off; got 'fp8'"):
        resolve_amp("fp8", torch.device("cpu"))


def test_sync_bn_without_torchrun_on_cuda_is_refused():
    with pytest.raises(PddError, match="--sync-bn needs CUDA GPUs under torchrun"):
        TrainSetup.from_options("cpu", sync_bn=True)


def test_negative_workers_are_refused():
    with pytest.raises(PddError, match="--workers must be 0"):
        TrainSetup.from_options("cpu", workers=-1)


def test_global_batch_must_split_evenly_among_ranks(monkeypatch):
    from pdd_edge.training import setup as setup_mod
    from pdd_edge.training.distributed import DistInfo

    monkeypatch.setattr(setup_mod, "dist_info", lambda: DistInfo(rank=0, world=4))
    setup = TrainSetup()
    assert setup.rank_batch(256) == 64
    with pytest.raises(PddError, match="--batch-size 250 is the global batch .* 4 processes; use a multiple of 4, e.g. 248"):
        setup.rank_batch(250)


@pytest.mark.parametrize("amp, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_mask_gate_and_its_gradient_stay_float32_under_autocast(amp, dtype):
    setup = TrainSetup(amp=amp)
    conv, mask = torch.nn.Conv2d(3, 4, 3), ChannelMask(4, "normal")
    with setup.autocast():
        y = mask(conv(torch.randn(2, 3, 8, 8)))
    assert y.dtype == dtype  # the activation keeps its reduced precision
    assert mask.gate().dtype == torch.float32
    y.float().sum().backward()
    assert mask.logits.grad is not None and mask.logits.grad.dtype == torch.float32


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_training_under_cpu_autocast_trains_and_fp16_keeps_its_loss_scale_for_resume(tmp_path, amp):
    fit = make_fit(tmp_path, epochs=1)
    fit.setup = TrainSetup(amp=amp)
    result = fit.run()
    assert torch.isfinite(torch.tensor(result.history[-1]["loss"]))
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    if amp == "fp16":
        assert state["grad_scaler"]["scale"] > 0
    else:
        assert state["grad_scaler"] is None  # bf16 needs no scaler
    # the weights are float32 whatever precision the forward passes ran in
    assert all(v.dtype == torch.float32 for k, v in state["model"].items() if v.is_floating_point())


def test_autocast_changes_the_computation_it_claims_to(tmp_path):
    # bf16 forward passes give another (close) trajectory than float32: autocast is really on.
    base = make_fit(tmp_path / "fp32", epochs=1).run().history[-1]["loss"]
    fit = make_fit(tmp_path / "bf16", epochs=1)
    fit.setup = TrainSetup(amp="bf16")
    mixed = fit.run().history[-1]["loss"]
    assert mixed != base and abs(mixed - base) < 0.1 * abs(base)


def test_checkpoint_tensors_are_moved_to_the_cpu_keeping_the_state_dict_structure():
    state = OrderedDict(w=torch.ones(2), n=torch.tensor(3))
    state._metadata = {"": {"version": 2}}  # type: ignore[attr-defined]
    moved = checkpoint.on_cpu({"model": state, "opt": {"state": {0: {"momentum": torch.zeros(2)}}, "groups": [(1, 2)]}})
    assert isinstance(moved["model"], OrderedDict) and moved["model"]._metadata == {"": {"version": 2}}
    assert moved["opt"]["groups"] == [(1, 2)] and moved["opt"]["state"][0]["momentum"].device.type == "cpu"
    assert torch.equal(moved["model"]["w"], torch.ones(2))


@pytest.mark.skipif(NO_CUDA, reason="needs a CUDA GPU")
def test_checkpoint_written_from_the_gpu_loads_on_the_cpu(tmp_path):
    checkpoint.save(tmp_path / "c.pt", {"model": {"w": torch.ones(2, device="cuda")}})
    assert torch.load(tmp_path / "c.pt", weights_only=True)["model"]["w"].device.type == "cpu"


@pytest.mark.parametrize("args, message", [
    (["--device", "cuda"], "no usable CUDA GPU"),
    (["--device", "tpu"], "--device must be one of"),
    (["--amp", "half"], "--amp must be one of"),
    (["--workers", "-2"], "--workers must be 0"),
    (["--sync-bn"], "--sync-bn needs CUDA GPUs under torchrun"),
])
@pytest.mark.skipif(not NO_CUDA, reason="checks the CPU-only machine")
def test_bad_runtime_options_of_distill_are_one_line_usage_errors_before_any_work(tmp_path, args, message):
    teacher = tmp_path / "t.pt"
    teacher.write_bytes(b"not used")
    result = run_cli("distill", "--student", "resnet20", "--teacher-weights", teacher, "--out", tmp_path / "out", *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert files_in(tmp_path / "out") == [] and teacher.read_bytes() == b"not used"


@pytest.mark.parametrize("command", [["train", "--model", "resnet20", "--out", "m.pt"],
                                     ["finetune", "p.pt", "--out", "ft"],
                                     ["compress"]])
@pytest.mark.skipif(not NO_CUDA, reason="checks the CPU-only machine")
def test_every_training_command_refuses_cuda_without_a_gpu(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.pt").write_bytes(b"x")
    result = run_cli(*command, "--device", "cuda")
    assert result.exit_code == 2 and "no usable CUDA GPU" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.pt"]


def test_evaluate_refuses_a_gpu_device_for_an_onnx_model(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    result = run_cli("evaluate", model, "--device", "cuda:0")
    assert result.exit_code == 2 and "evaluated with onnxruntime on the CPU" in result.stderr
