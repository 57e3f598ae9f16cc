"""Model specs (zoo / torchvision: / timm: / file.py:function), their errors, and self-describing
checkpoints of traced models, including the sha256 guard on a user's model file."""

import shutil
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from pdd_edge import checkpoint
from pdd_edge import zoo
from pdd_edge.data.preprocess import Preprocess
from pdd_edge.errors import PddError
from pdd_edge.nn.pruning import plan_from_masks, prune
from pdd_edge.zoo import specs
from pdd_edge.zoo.masked import MaskedNetwork
from pdd_edge.zoo.specs import parse, parse_model_args

USER_FILE = Path(__file__).with_name("user_models.py")
PRE = Preprocess(mean=(0.5,) * 3, std=(0.25,) * 3, input_size=(32, 32))


@pytest.mark.parametrize("text, kind, target", [
    ("resnet20", "zoo", "resnet20"), ("ResNet56", "zoo", "resnet56"),
    ("torchvision:mobilenet_v2", "torchvision", "mobilenet_v2"), ("timm:efficientnet_b0", "timm", "efficientnet_b0"),
    ("models/net.py:build", "file", "build"),
])
def test_parse_recognises_the_four_spec_forms(text, kind, target):
    spec = parse(text)
    assert (spec.kind, spec.target) == (kind, target)


@pytest.mark.parametrize("text, message", [
    ("resnet21", "unknown model 'resnet21'; did you mean resnet32.*torchvision:NAME"),
    ("keras:resnet50", "names no known builder 'keras'"),
    ("torchvision:", "names no model after torchvision:"),
    ("net.py", "names a file but no function; write net.py:FUNCTION"),
    ("net.py:", "names no function after the colon"),
    ("", "empty model name"),
])
def test_parse_refuses_malformed_specs_with_the_accepted_forms(text, message):
    with pytest.raises(PddError, match=message):
        parse(text)


def test_model_args_are_json_literals_or_strings_never_evaluated():
    assert parse_model_args(["width_mult=0.5", "dropout=0", "flag=true", "name=abc", "t=True", "x=__import__('os')"]) == {
        "width_mult": 0.5, "dropout": 0, "flag": True, "name": "abc", "t": True, "x": "__import__('os')"}
    with pytest.raises(PddError, match="KEY=VALUE"):
        parse_model_args(["width_mult"])


def test_torchvision_model_arg_reaches_the_builder():
    model = zoo.build("torchvision:mobilenet_v2", num_classes=3, args={"width_mult": 0.5})
    assert model.net.features[0][0].out_channels == 16 and model.num_classes == 3


@pytest.mark.parametrize("spec, args, message", [
    ("torchvision:mobilenet_v9", {}, "torchvision has no classification model 'mobilenet_v9'.*did you mean"),
    ("torchvision:fasterrcnn_resnet50_fpn", {}, "no classification model"),
    ("torchvision:resnet18", {"wdth": 2}, r"torchvision:resnet18 rejected its arguments \{'wdth': 2\}.*--model-arg"),
    ("vgg11", {"width": 2}, "zoo model and takes no --model-arg"),
    ("resnet20", {"width": 2}, "zoo model and accepts only mask_placement="),
    ("resnet20", {"mask_placement": "layer"}, "mask_placement must be one of block, stage"),
    (f"{USER_FILE}:missing", {}, "has no function 'missing'; it defines: .*branchy"),
    (f"{USER_FILE}:not_a_module", {}, "returned str, not a torch.nn.Module"),
    (f"{USER_FILE}:fixed_head", {}, r"returns outputs of shape \(1, 5\) .*expected \(1, 10\)"),
    ("nowhere/net.py:build", {}, "model file not found: nowhere/net.py"),
])
def test_bad_specs_fail_with_one_clear_line(spec, args, message):
    with pytest.raises(PddError, match=message):
        zoo.build(spec, num_classes=10, args=args)


def test_timm_spec_without_timm_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    with pytest.raises(PddError, match=r'timm:resnet18 needs timm.*pip install "pdd-edge\[timm\]"'):
        zoo.build("timm:resnet18")


def test_published_torchvision_state_dict_loads_as_is(tmp_path):
    torch.save(torchvision.models.resnet18(num_classes=1000).state_dict(), tmp_path / "resnet18.pth")
    model, info = checkpoint.load(tmp_path / "resnet18.pth", model_name="torchvision:resnet18")
    assert info.num_classes == 1000 and info.third_party and not info.pruned
    with pytest.raises(PddError, match="does not fit model torchvision:mobilenet_v2.*another architecture"):
        checkpoint.load(tmp_path / "resnet18.pth", model_name="torchvision:mobilenet_v2")


def pruned_checkpoint(spec: str, path: Path, args=None) -> torch.nn.Module:
    model = zoo.build(spec, num_classes=10, args=args)
    points = MaskedNetwork.attach(model).points
    masked = MaskedNetwork.load(model, {p: torch.where(torch.arange(c) % 3 == 0, -1.0, 1.0) for p, c in points.items()})
    model.eval()
    pruned = prune(masked, spec, plan_from_masks(masked))
    checkpoint.save(path, checkpoint.checkpoint_dict(pruned, model_name=spec, preprocess=PRE))
    return pruned


def test_pruned_traced_checkpoint_rebuilds_itself_from_spec_args_and_kept_channels(tmp_path):
    pruned = pruned_checkpoint("torchvision:mobilenet_v2", tmp_path / "m.pt", args={"width_mult": 0.75})
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert raw["model"] == "torchvision:mobilenet_v2" and raw["arch"]["args"] == {"width_mult": 0.75}
    assert raw["arch"]["keep"] == pruned.keep and raw["arch"]["input_size"] == [32, 32]
    loaded, info = checkpoint.load(tmp_path / "m.pt")
    assert info.pruned and info.keep == pruned.keep
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded(x), pruned.eval()(x))


def test_file_model_checkpoint_runs_the_file_only_when_named_and_unchanged(tmp_path, monkeypatch):
    user = tmp_path / "net.py"
    shutil.copy(USER_FILE, user)
    spec = f"{user}:branchy"
    pruned_checkpoint(spec, tmp_path / "m.pt")
    raw = torch.load(tmp_path / "m.pt", weights_only=True)
    assert raw["arch"]["source"]["path"] == str(user.resolve()) and len(raw["arch"]["source"]["sha256"]) == 64
    assert checkpoint.load(tmp_path / "m.pt")[1].pruned  # this process named the file: it may run it
    monkeypatch.setattr(specs, "_TRUSTED", set())  # a new process, whose command line names no file
    with pytest.raises(PddError, match="defined by the user code .*net.py:branchy.*pass --model"):
        checkpoint.load(tmp_path / "m.pt")
    loaded, _ = checkpoint.load(tmp_path / "m.pt", model_name=spec)
    assert loaded.is_pruned()
    user.write_text(user.read_text() + "\n# edited\n")
    with pytest.raises(PddError, match="net.py has changed since the checkpoint was written"):
        checkpoint.load(tmp_path / "m.pt", model_name=spec)


def test_checkpoint_of_one_spec_refuses_another_name(tmp_path):
    pruned_checkpoint("torchvision:resnet18", tmp_path / "m.pt")
    with pytest.raises(PddError, match="holds a torchvision:resnet18, not a torchvision:resnet34"):
        checkpoint.load(tmp_path / "m.pt", model_name="torchvision:resnet34")
