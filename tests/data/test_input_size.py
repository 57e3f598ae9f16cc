"""An input size of H or H,W carried by DataConfig and honoured by every loader (its command-line
parsing: tests/cli/test_shared.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pdd_edge.data import load_dataset
from pdd_edge.data.base import Augment, resize_uint8
from pdd_edge.data.imagefolder import StreamSource, load_imagefolder
from pdd_edge.data.options import DataConfig, resolve_preprocess
from pdd_edge.data.preprocess import Preprocess
from pdd_edge.errors import PddError


def test_data_config_keeps_int_sizes_as_squares_and_refuses_bad_ones():
    assert DataConfig(input_size=16).input_size == (16, 16)
    assert DataConfig(input_size=(24, 40)).input_size == (24, 40)
    assert DataConfig(input_size=[24, 40]).input_size == (24, 40)  # as a JSON record gives it
    for bad in (True, 0, -3, (0, 8), (8, 8, 8), "32", 3.0, (True, 8)):
        with pytest.raises(PddError, match="--input-size must be a positive number of pixels"):
            DataConfig(input_size=bad)


def test_for_model_takes_the_recorded_size_even_when_not_square():
    assert DataConfig(name=None).for_model("digits", (24, 40), "m.pt").input_size == (24, 40)
    assert DataConfig(name=None, input_size=16).for_model("digits", (24, 40), "m.pt").input_size == (16, 16)
    assert DataConfig(name=None).for_model("digits", None, "m.pt").input_size is None


@pytest.fixture(scope="module")
def digits_24x40():
    return load_dataset("digits", input_size=(24, 40))


def test_digits_at_height_by_width_gives_batches_of_that_shape(digits_24x40):
    data = digits_24x40
    assert data.preprocess.input_size == (24, 40) and data.input_hw == (24, 40)
    x, _ = next(data.val.batches(16, shuffle=False, augment=None, seed=0, epoch=0))
    assert x.shape == (16, 3, 24, 40)


def test_augmentation_keeps_height_and_width(digits_24x40):
    data = digits_24x40
    assert data.augment == Augment(pad=3, hflip=False)  # min(24, 40) // 8
    x, _ = next(data.train.batches(32, shuffle=True, augment=data.augment, seed=0, epoch=0))
    assert x.shape == (32, 3, 24, 40)
    flipped, _ = next(data.train.batches(32, shuffle=True, augment=Augment(pad=5, hflip=True), seed=1, epoch=0))
    assert flipped.shape == (32, 3, 24, 40)


def test_resize_uint8_takes_height_and_width():
    images = torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.uint8)
    assert resize_uint8(images, (12, 20)).shape == (2, 3, 12, 20)
    assert resize_uint8(images, (4, 16)).shape == (2, 3, 4, 16)  # one side shrinks, the other grows
    assert resize_uint8(images, (8, 8)) is images


def _write_image_folder(root, classes=("cat", "dog"), per_class=2):
    from PIL import Image

    rng = np.random.RandomState(0)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.randint(0, 255, (20, 30, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")


def test_imagefolder_at_height_by_width_in_memory_and_streamed(tmp_path):
    _write_image_folder(tmp_path)
    memory = load_imagefolder(tmp_path, input_size=(16, 24))
    stream = load_imagefolder(tmp_path, input_size=(16, 24), memory_limit=0)
    assert isinstance(stream.val, StreamSource)
    stream.val.workers = 0
    assert memory.preprocess.input_size == (16, 24) and memory.augment.pad == 2
    a = next(memory.val.batches(4, shuffle=False, augment=None, seed=0, epoch=0))
    b = next(stream.val.batches(4, shuffle=False, augment=None, seed=0, epoch=0))
    assert a[0].shape == (4, 3, 16, 24) and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    x, _ = next(memory.train.batches(4, shuffle=True, augment=memory.augment, seed=0, epoch=0))
    assert x.shape == (4, 3, 16, 24)


def test_imagefolder_memory_estimate_counts_height_times_width(tmp_path):
    _write_image_folder(tmp_path)
    need = 8 * 3 * 16 * 24  # 8 images
    assert not isinstance(load_imagefolder(tmp_path, input_size=(16, 24), memory_limit=need).val, StreamSource)
    assert isinstance(load_imagefolder(tmp_path, input_size=(16, 24), memory_limit=need - 1).val, StreamSource)


def test_size_mismatch_tells_the_non_square_form_to_pass(digits_24x40):
    info = SimpleNamespace(preprocess=Preprocess(mean=(0.5,) * 3, std=(0.25,) * 3, input_size=(20, 36)))
    from pdd_edge.data.options import NormOverride

    with pytest.raises(PddError, match="expects 20x36 inputs but the dataset gives 24x40; pass --input-size 20,36$"):
        resolve_preprocess(digits_24x40, info, NormOverride())
    info.preprocess = Preprocess(mean=(0.5,) * 3, std=(0.25,) * 3, input_size=(24, 40))
    assert resolve_preprocess(digits_24x40, info, NormOverride()).input_size == (24, 40)


def test_onnx_size_mismatch_tells_the_non_square_form_to_pass(digits_24x40):
    from pdd_edge.onnx import accuracy as onnx_accuracy
    from pdd_edge.onnx.meta import OnnxMeta
    from pdd_edge.onnx.runtime import GraphIO

    io = GraphIO(input_name="input", input_shape=(None, 3, 20, 36), output_name="logits", num_outputs=10)
    with pytest.raises(PddError, match="expects 20x36 inputs but digits gives 24x40; pass --input-size 20,36$"):
        onnx_accuracy.resolve_preprocess(OnnxMeta(), io, digits_24x40)
    io = GraphIO(input_name="input", input_shape=(None, 3, 24, 40), output_name="logits", num_outputs=10)
    pre, _ = onnx_accuracy.resolve_preprocess(OnnxMeta(), io, digits_24x40)
    assert pre.input_size == (24, 40)
