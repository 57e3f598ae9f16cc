import collections

import pytest
import torch

from pdd_edge import checkpoint
from pdd_edge import zoo
from pdd_edge.data.preprocess import Preprocess
from pdd_edge.errors import PddError
from pdd_edge.zoo.masked import MaskedNetwork
from tests.conftest import AKAMASTER, shared_file

PRE = Preprocess(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), input_size=(32, 32))


@pytest.mark.parametrize("filename, name", [("resnet20-12fca82f.th", "resnet20"), ("resnet56-4bfd9763.th", "resnet56")])
def test_load_akamaster_checkpoint_strictly(filename, name):
    path = shared_file(AKAMASTER / filename)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    model = zoo.build(name)
    state = {k.removeprefix("module."): v for k, v in raw["state_dict"].items()}
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    loaded, info = checkpoint.load(path, model_name=name)
    assert info.third_party and info.num_classes == 10 and info.preprocess is None
    assert torch.equal(loaded.linear.weight, state["linear.weight"])


def _saved_plain(tmp_path, form: str):
    model = zoo.build("resnet20", num_classes=7)
    state = model.state_dict()
    if form == "plain":
        obj = state
    elif form == "wrapped":
        obj = {"state_dict": state, "epoch": 3}
    else:  # DataParallel prefix inside {"state_dict"}
        obj = {"state_dict": collections.OrderedDict((f"module.{k}", v) for k, v in state.items())}
    path = tmp_path / f"{form}.pth"
    torch.save(obj, path)
    return model, path


@pytest.mark.parametrize("form", ["plain", "wrapped", "module_prefix"])
def test_load_third_party_forms_with_model_name(tmp_path, form):
    original, path = _saved_plain(tmp_path, form)
    loaded, info = checkpoint.load(path, model_name="resnet20")
    assert info.num_classes == 7  # inferred from the classifier weight
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded(x), original.eval()(x))


def test_load_third_party_without_model_name_asks_for_it(tmp_path):
    _, path = _saved_plain(tmp_path, "plain")
    with pytest.raises(PddError, match="pass --model NAME"):
        checkpoint.load(path)


def test_load_checkpoint_of_other_architecture_names_the_mismatch(tmp_path):
    _, path = _saved_plain(tmp_path, "plain")
    with pytest.raises(PddError, match="does not fit model resnet32: .*missing keys.*another architecture"):
        checkpoint.load(path, model_name="resnet32")


def test_save_and_load_round_trip_restores_weights_masks_and_description(tmp_path):
    torch.manual_seed(0)
    model = zoo.build("vgg11", num_classes=4)
    masks = MaskedNetwork.attach(model).masks
    ck = checkpoint.checkpoint_dict(model, model_name="vgg11", preprocess=PRE, classes=list("abcd"), dataset="x",
                                 metrics={"val_top1": 50.0})
    assert all(not k.endswith(".logits") for k in ck["state_dict"])
    path = checkpoint.save(tmp_path / "c.pt", ck)
    loaded, info = checkpoint.load(path)
    assert (info.model, info.num_classes, info.preprocess, info.classes, info.masked) == ("vgg11", 4, PRE, list("abcd"), True)
    loaded_masks = MaskedNetwork(loaded).masks
    for name, mask in masks.items():
        assert torch.equal(loaded_masks[name].logits, mask.logits)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded(x), model.eval()(x))


def test_load_masks_trained_at_a_multiple_computes_the_network_they_trained(tmp_path):
    torch.manual_seed(0)
    model = zoo.build("resnet20", num_classes=4)
    masked = MaskedNetwork.attach(model).set_multiple(16)  # about half of each layer open: rounding matters
    ck = checkpoint.checkpoint_dict(model, model_name="resnet20", preprocess=PRE, record={"mask_multiple": 16})
    loaded, _ = checkpoint.load(checkpoint.save(tmp_path / "c.pt", ck))
    assert MaskedNetwork(loaded).multiple == 16
    assert MaskedNetwork(loaded).open_counts() == masked.open_counts()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded(x), model.eval()(x))
    # without the record the same file loads with raw gates, as an older checkpoint does
    ck["record"] = {}
    plain, _ = checkpoint.load(checkpoint.save(tmp_path / "d.pt", ck))
    assert MaskedNetwork(plain).multiple is None


def test_save_and_load_pruned_checkpoint_rebuilds_its_channel_plan(tmp_path):
    keep = zoo.full_keep("resnet20")
    keep["layer1.0.gate_mid"] = [1, 5]
    keep["layer3.1.gate_out"] = list(range(0, 64, 3))
    model = zoo.build("resnet20", keep=keep)
    path = checkpoint.save(tmp_path / "p.pt", checkpoint.checkpoint_dict(model, model_name="resnet20", preprocess=PRE))
    loaded, info = checkpoint.load(path)
    assert info.pruned and info.keep["layer1.0.gate_mid"] == [1, 5]
    assert loaded.layer1[0].conv1.out_channels == 2


def test_read_missing_file_says_not_found(tmp_path):
    with pytest.raises(PddError, match="checkpoint not found"):
        checkpoint.read(tmp_path / "nope.pt")


def test_read_truncated_file_says_corrupt(tmp_path):
    path = tmp_path / "t.pt"
    torch.save(zoo.build("resnet20").state_dict(), path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(PddError, match="not a readable PyTorch checkpoint"):
        checkpoint.read(path)


@pytest.mark.parametrize("name, data, extra", [
    ("noise.pt", bytes(range(7, 200)) * 20, ""),
    ("text.pt", b"garbage\n", ""),
    ("model.onnx", b"\x08\x08\x12\x07pytorch", "it looks like an ONNX model"),
])
def test_read_file_that_is_no_torch_save_output_says_not_a_pytorch_checkpoint(tmp_path, name, data, extra):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(PddError, match="is not a PyTorch checkpoint") as caught:
        checkpoint.read(path)
    assert "safety" not in str(caught.value) and extra in str(caught.value)


def test_load_resume_state_points_at_the_runs_best_checkpoint(tmp_path):
    path = tmp_path / "run" / "last.pt"
    path.parent.mkdir()
    torch.save({"kind": "pdd-edge.train-state", "epoch": 3, "model": zoo.build("resnet20").state_dict()}, path)
    with pytest.raises(PddError, match=r"is the resume state of a training run .* use the run's best checkpoint: "
                                       + str(tmp_path / "run" / "best.pt")):
        checkpoint.load(path)


class Payload:  # an arbitrary Python object: weights_only loading must refuse to build it
    pass


def test_read_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "obj": Payload()}, path)
    with pytest.raises(PddError, match="not loaded for safety"):
        checkpoint.read(path)


def test_load_newer_format_version_asks_to_upgrade(tmp_path):
    ck = checkpoint.checkpoint_dict(zoo.build("resnet20"), model_name="resnet20", preprocess=PRE)
    ck["format_version"] = 99
    path = checkpoint.save(tmp_path / "v.pt", ck)
    with pytest.raises(PddError, match="format version 99.*upgrade"):
        checkpoint.load(path)


def _flip(path, start: int, count: int) -> None:
    data = bytearray(path.read_bytes())
    for i in range(start, min(start + count, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_load_checkpoint_with_flipped_weight_bytes_says_corrupted(tmp_path):
    path = checkpoint.save(tmp_path / "T.pt", checkpoint.checkpoint_dict(zoo.build("resnet20"), model_name="resnet20", preprocess=PRE))
    _flip(path, path.stat().st_size // 2, 4000)  # the middle of the file: weight bytes, which no reader checks
    with pytest.raises(PddError, match=r"checkpoint .*T\.pt is corrupted \(checksum mismatch.*re-create it"):
        checkpoint.load(path)


def test_evaluate_corrupted_checkpoint_is_one_line_usage_error(tmp_path):
    from tests.helpers import assert_usage_error
    from tests.helpers import run_cli

    path = checkpoint.save(tmp_path / "T.pt", checkpoint.checkpoint_dict(zoo.build("resnet20"), model_name="resnet20", preprocess=PRE))
    _flip(path, path.stat().st_size // 2, 4000)
    before = path.read_bytes()
    assert_usage_error(run_cli("evaluate", path), "is corrupted (checksum mismatch")
    assert path.read_bytes() == before


def test_read_training_state_with_flipped_bytes_says_corrupted_and_to_delete_it(tmp_path):
    state = {"kind": "pdd-edge.train-state", "epoch": 2, "model": zoo.build("resnet20").state_dict(),
             "torch_rng": torch.get_rng_state()}
    path = checkpoint.save(tmp_path / "last.pt", state)
    _flip(path, path.stat().st_size // 2, 16)
    with pytest.raises(PddError, match="training state .* is corrupted .*delete it to start that training over"):
        checkpoint.read(path, "training state")


def test_saved_checkpoint_records_checksum_that_read_verifies_and_strips_nothing_else(tmp_path):
    ck = checkpoint.checkpoint_dict(zoo.build("resnet20"), model_name="resnet20", preprocess=PRE)
    raw = checkpoint.read(checkpoint.save(tmp_path / "T.pt", ck))
    assert raw[checkpoint.CHECKSUM] == checkpoint.content_sha256({k: v for k, v in raw.items() if k != checkpoint.CHECKSUM})
    assert set(raw) == set(ck) | {checkpoint.CHECKSUM}


def test_load_checkpoint_without_checksum_loads_as_before(tmp_path):
    # a checkpoint of pdd-edge before checksums: nothing to verify, so it loads
    model = zoo.build("resnet20")
    path = tmp_path / "old.pt"
    torch.save(checkpoint.checkpoint_dict(model, model_name="resnet20", preprocess=PRE), path)
    loaded, info = checkpoint.load(path)
    assert info.model == "resnet20"
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_read_any_single_byte_flip_gives_the_content_or_one_readable_error(tmp_path):
    """Every byte of a small checkpoint flipped in turn: reading it fails with a PddError (never
    another exception), or gives no pdd-edge checkpoint, or gives exactly the content saved."""
    saved = {"format": checkpoint.FORMAT, "state_dict": {"w": torch.arange(12.0).reshape(3, 4)}, "metrics": {"val_top1": 91.5}}
    good = checkpoint.save(tmp_path / "good.pt", saved)
    data = good.read_bytes()
    bad = tmp_path / "bad.pt"
    errors = 0
    for offset in range(len(data)):
        flipped = bytearray(data)
        flipped[offset] ^= 0x5A
        bad.write_bytes(bytes(flipped))
        try:
            raw = checkpoint.read(bad)
        except PddError:
            errors += 1
            continue
        if not isinstance(raw, dict) or raw.get("format") != checkpoint.FORMAT:
            # no longer a pdd-edge checkpoint at all (a bare int, an inner dict): every loader refuses it
            errors += 1
            continue
        assert torch.equal(raw["state_dict"]["w"], saved["state_dict"]["w"]) and raw["metrics"] == saved["metrics"], offset
    assert errors > len(data) // 4  # most flips land in bytes that matter
