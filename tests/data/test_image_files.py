"""The torch-free image-folder reader (`data.image_files`) against the torch path (torchvision's
ImageFolder listing, PIL decoding): the same pixels, labels and classes, so the same ONNX scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pdd_edge import data as data_pkg
from pdd_edge.data.image_files import FileSource, load_image_files
from pdd_edge.data.options import DataConfig
from pdd_edge.errors import PddError

from tests.onnx_builders import linear_classifier, save

CLASSES = ("zebra", "ant", "Cat", "bee", "dog", "eel")  # sorted by ImageFolder: 'Cat' first (upper case)


def write_mixed_folder(root: Path) -> Path:
    """Six classes of PNG and JPEG images of two sizes (both resized), an upper-case extension, a
    nested folder and a file that is no image: every rule of ImageFolder's listing is exercised."""
    from PIL import Image

    rng = np.random.RandomState(0)
    for split in ("train", "val"):
        for k, name in enumerate(CLASSES):
            folder = root / split / name
            (folder / "nested").mkdir(parents=True)
            for i in range(3):
                h, w = ((20, 28), (37, 11))[i % 2]
                img = Image.fromarray(rng.randint(0, 255, (h, w, 3), dtype=np.uint8))
                img.save(folder / f"{i}.png") if (i + k) % 2 else img.save(folder / f"{i}.JPG", quality=90)
            Image.fromarray(rng.randint(0, 255, (9, 9), dtype=np.uint8)).save(folder / "nested" / "gray.png")
            (folder / "notes.txt").write_text("not an image")
    return root


def torchvision_reference(split: Path, size: tuple[int, int]):
    """The torch path as torchvision defines it: ImageFolder's classes and samples, each image
    decoded by PIL `convert("RGB").resize((w, h), BILINEAR)` into a uint8 tensor."""
    from PIL import Image
    from torchvision.datasets import ImageFolder
    from torchvision.transforms.functional import pil_to_tensor

    folder = ImageFolder(str(split))
    images = [pil_to_tensor(Image.open(p).convert("RGB").resize((size[1], size[0]), Image.BILINEAR))
              for p, _ in folder.samples]
    return folder.classes, folder.samples, torch.stack(images)


def test_image_files_give_imagefolders_pixels_labels_and_classes(tmp_path):
    root = write_mixed_folder(tmp_path)
    classes, samples, images = torchvision_reference(root / "val", (24, 16))

    data = load_image_files(root, input_size=(24, 16))
    x, y = zip(*data.val.batches(5, shuffle=False, augment=None))

    assert data.classes == classes == sorted(CLASSES)
    assert data.val.samples == samples and len(samples) == 6 * 4  # three images and the nested one per class
    assert np.array_equal(np.rint(np.concatenate(x) * 255).astype(np.uint8), images.numpy())
    assert np.array_equal(np.concatenate(y), np.array([label for _, label in samples]))


def test_image_files_batches_equal_the_torch_paths_batches(tmp_path):
    root = write_mixed_folder(tmp_path)
    torch_data = data_pkg.load_dataset("imagefolder", data_dir=root, input_size=(24, 16))
    edge_data = load_image_files(root, input_size=(24, 16))

    for (a, la), (b, lb) in zip(torch_data.val.batches(7, shuffle=False, augment=None, seed=0, epoch=0),
                                edge_data.val.batches(7, shuffle=False, augment=None), strict=True):
        assert np.array_equal(a.numpy(), b) and np.array_equal(la.numpy(), lb)  # the same float32 values


def test_evaluate_onnx_scores_the_same_with_and_without_torch(tmp_path, monkeypatch):
    from pdd_edge.stages.evaluate import evaluate_onnx

    root = write_mixed_folder(tmp_path / "data")
    model = save(linear_classifier((24, 16), len(CLASSES)), tmp_path / "model.onnx")
    cfg = DataConfig("imagefolder", str(root), input_size=(24, 16))
    with_torch = evaluate_onnx(model, cfg, batch_size=5)
    monkeypatch.setattr(data_pkg, "torch_installed", lambda: False)
    without_torch = evaluate_onnx(model, cfg, batch_size=5)

    assert isinstance(cfg.load().val, FileSource)  # the second run did read with the edge reader
    assert without_torch == with_torch
    assert with_torch["count"] == 24 and 0 < with_torch["top5"] < 100  # a score that can differ


@pytest.fixture
def no_torch(monkeypatch):
    """This install as an edge install sees it: torch not importable."""
    from pdd_edge import errors

    monkeypatch.setattr(errors, "torch_installed", lambda: False)
    monkeypatch.setattr(data_pkg, "torch_installed", lambda: False)


@pytest.mark.parametrize("name", ["digits", "cifar10"])
def test_torch_datasets_name_the_training_extra_when_torch_is_missing(no_torch, name):
    # cifar10 has no --data-dir here: the missing torch is named first, not a folder that would not help.
    with pytest.raises(PddError, match=rf"^the {name} dataset needs PyTorch, which this install does not have; "
                                       r"install the training extra: pip install 'pdd-edge\[train\]'$"):
        data_pkg.load_dataset(name)


def test_image_files_refuse_a_shuffled_pass_without_torch(tmp_path, no_torch):
    data = data_pkg.load_dataset("imagefolder", data_dir=write_mixed_folder(tmp_path))

    with pytest.raises(PddError, match="^a shuffled or augmented pass over an image folder needs PyTorch"):
        next(data.train.batches(4, shuffle=True, augment=None))


def test_image_files_class_folder_without_images_is_an_error(tmp_path):
    root = write_mixed_folder(tmp_path)
    (root / "val" / "fox").mkdir()
    (root / "val" / "fox" / "readme.txt").write_text("no images")

    with pytest.raises(PddError, match=r"no images found under .*val \(no image in class folder 'fox'; image extensions"):
        load_image_files(root)
