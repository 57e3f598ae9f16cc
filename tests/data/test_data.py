import re
import pickle

import numpy as np
import pytest
import torch

from pdd_edge.data import load_dataset
from pdd_edge.data.base import Augment, TensorSource, crop_shifted
from pdd_edge.data.imagefolder import StreamSource, load_imagefolder
from pdd_edge.data.preprocess import CIFAR10_MEAN
from pdd_edge.errors import PddError


def test_load_digits_gives_fixed_stratified_split_of_real_sklearn_digits():
    data = load_dataset("digits")
    assert (len(data.train), len(data.val)) == (1438, 359)
    assert data.num_classes == 10 and data.input_hw == (32, 32)
    val_labels = torch.cat([y for _, y in data.val.batches(1000, shuffle=False, augment=None, seed=0, epoch=0)])
    per_class = torch.bincount(val_labels, minlength=10)
    assert per_class.min() >= 35 and per_class.max() <= 37  # 20 % of 174..183 images per class
    again = load_dataset("digits")
    assert torch.equal(again.val.images, data.val.images)


def test_load_digits_images_are_rgb_32x32_and_not_flipped_in_augmentation():
    data = load_dataset("digits")
    assert data.train.images.shape[1:] == (3, 32, 32) and data.train.images.dtype == torch.uint8
    assert torch.equal(data.train.images[:, 0], data.train.images[:, 2])
    assert data.augment == Augment(pad=4, hflip=False)


def test_batches_are_reproducible_per_seed_and_epoch_and_differ_between_epochs():
    src = TensorSource(torch.randint(0, 255, (50, 3, 8, 8), dtype=torch.uint8), torch.arange(50))
    aug = Augment(pad=2, hflip=True)

    def first(seed, epoch):
        return next(src.batches(10, shuffle=True, augment=aug, seed=seed, epoch=epoch))

    a, b, c = first(0, 3), first(0, 3), first(0, 4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_batches_shard_training_epochs_evenly_across_ranks():
    src = TensorSource(torch.zeros(11, 3, 4, 4, dtype=torch.uint8), torch.arange(11))
    seen = [torch.cat([y for _, y in src.batches(4, shuffle=True, augment=None, seed=1, epoch=0, rank=r, world=3)])
            for r in range(3)]
    assert [len(s) for s in seen] == [4, 4, 4]
    assert set(torch.cat(seen).tolist()) == set(range(11))


def test_crop_shifted_is_the_window_at_its_offset_of_the_zero_padded_image():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4) + 1
    dy, dx = torch.tensor([0, 2]), torch.tensor([1, 0])
    out = crop_shifted(x, 1, dy, dx)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for i in range(2):
        assert torch.equal(out[i], padded[i, :, dy[i]:dy[i] + 4, dx[i]:dx[i] + 4])


def test_ranks_kth_batches_together_are_the_single_process_global_batch_with_the_same_augmentation():
    # What makes a torchrun run with per-rank batch B/world train on what one process sees at batch B.
    g = torch.Generator().manual_seed(0)
    src = TensorSource(torch.randint(0, 255, (38, 3, 8, 8), dtype=torch.uint8, generator=g), torch.arange(38))
    aug = Augment(pad=2, hflip=True)
    single = list(src.batches(8, shuffle=True, augment=aug, seed=3, epoch=2))
    ranks = [list(src.batches(4, shuffle=True, augment=aug, seed=3, epoch=2, rank=r, world=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(single) == 5
    for k, (x, y) in enumerate(single):
        # rank r holds positions r, r + 2, ... of the epoch order
        merged_x = torch.stack([ranks[i % 2][k][0][i // 2] for i in range(len(y))])
        merged_y = torch.stack([ranks[i % 2][k][1][i // 2] for i in range(len(y))])
        assert torch.equal(merged_y, y) and torch.equal(merged_x, x)


def test_load_dataset_unknown_name_lists_choices():
    with pytest.raises(PddError, match="unknown dataset 'mnist'.*digits"):
        load_dataset("mnist")


def _write_fake_cifar10(root, n_train=20, n_test=10):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.RandomState(0)
    for i in range(1, 6):
        data = rng.randint(0, 255, (n_train // 5, 3072), dtype=np.uint8)
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump({"data": data, "labels": list(rng.randint(0, 10, n_train // 5))}, f)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": rng.randint(0, 255, (n_test, 3072), dtype=np.uint8), "labels": list(range(n_test))}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}, f)


def test_load_cifar10_reads_torchvision_batches_from_data_dir(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    _write_fake_cifar10(tmp_path)
    # The fake batches cannot match the official MD5 sums that torchvision checks.
    monkeypatch.setattr(tv_cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    data = load_dataset("cifar10", data_dir=tmp_path)
    assert (len(data.train), len(data.val), data.num_classes) == (20, 10, 10)
    assert data.train.images.shape == (20, 3, 32, 32)
    assert data.val.labels.tolist() == list(range(10))
    assert data.preprocess.mean == CIFAR10_MEAN and data.augment.hflip


def test_load_cifar10_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(PddError, match="cifar10 not found.*--download"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_load_cifar10_without_data_dir_asks_for_it():
    with pytest.raises(PddError, match="needs --data-dir"):
        load_dataset("cifar10")


def _write_image_folder(root, classes=("cat", "dog"), per_class=3, size=40):
    from PIL import Image

    rng = np.random.RandomState(0)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.randint(0, 255, (size, size, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")


def test_load_imagefolder_resizes_and_labels_by_folder(tmp_path):
    _write_image_folder(tmp_path)
    data = load_imagefolder(tmp_path, input_size=32)
    assert data.classes == ["cat", "dog"] and len(data.train) == 6
    x, y = next(data.val.batches(10, shuffle=False, augment=None, seed=0, epoch=0))
    assert x.shape == (6, 3, 32, 32) and y.tolist() == [0, 0, 0, 1, 1, 1]


def test_load_imagefolder_streamed_and_in_memory_give_identical_batches(tmp_path):
    _write_image_folder(tmp_path)
    memory = load_imagefolder(tmp_path, input_size=16)
    stream = load_imagefolder(tmp_path, input_size=16, memory_limit=0)
    assert isinstance(stream.val, StreamSource)
    stream.val.workers = 0
    a = next(memory.val.batches(6, shuffle=False, augment=None, seed=0, epoch=0))
    b = next(stream.val.batches(6, shuffle=False, augment=None, seed=0, epoch=0))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_load_imagefolder_mismatched_classes_is_an_error(tmp_path):
    _write_image_folder(tmp_path)
    (tmp_path / "val" / "dog").rename(tmp_path / "val" / "wolf")
    with pytest.raises(PddError, match="different classes"):
        load_imagefolder(tmp_path)


def test_load_imagefolder_missing_split_is_an_error(tmp_path):
    import shutil

    _write_image_folder(tmp_path)
    shutil.rmtree(tmp_path / "val")
    with pytest.raises(PddError, match="val is missing"):
        load_imagefolder(tmp_path)


def test_load_imagefolder_corrupt_image_names_the_file(tmp_path):
    _write_image_folder(tmp_path)
    (tmp_path / "train" / "cat" / "0.png").write_bytes(b"not a png")
    data = load_imagefolder(tmp_path)  # decoding is lazy: the error comes with the first batch
    with pytest.raises(PddError, match="cannot read image .*0.png"):
        next(data.train.batches(4, shuffle=False, augment=None, seed=0, epoch=0))


def test_load_imagefolder_class_folder_without_images_is_an_error(tmp_path):
    _write_image_folder(tmp_path)
    (tmp_path / "train" / "empty").mkdir()
    with pytest.raises(PddError, match="no images found"):
        load_imagefolder(tmp_path)


@pytest.mark.parametrize("folders, message", [
    (("ant", "bee"), r"only the model has 'cat', 'dog'; only the dataset has 'ant', 'bee'; first difference: "
                     r"output 0 is 'cat', the dataset's class 0 is 'ant'"),
    (("dog", "zebra"), r"first difference: output 0 is 'cat', the dataset's class 0 is 'dog'"),
])
def test_evaluate_refuses_imagefolder_whose_class_names_are_not_the_models(tmp_path, folders, message):
    from pdd_edge import checkpoint
    from pdd_edge import zoo
    from pdd_edge.data.options import DataConfig
    from pdd_edge.data.preprocess import Preprocess
    from pdd_edge.stages.evaluate import evaluate_checkpoint

    pre = Preprocess(mean=(0.5,) * 3, std=(0.25,) * 3, input_size=(32, 32))
    ckpt = checkpoint.save(tmp_path / "m.pt", checkpoint.checkpoint_dict(zoo.build("resnet20", 2), model_name="resnet20",
                                                                    preprocess=pre, classes=["cat", "dog"]))
    _write_image_folder(tmp_path / "same")
    data = DataConfig("imagefolder", data_dir=str(tmp_path / "same"))
    assert evaluate_checkpoint(ckpt, data)["count"] == 6  # the names it was trained on: scored
    _write_image_folder(tmp_path / "other", classes=folders)
    with pytest.raises(PddError, match="was trained on other class names than imagefolder's") as caught:
        evaluate_checkpoint(ckpt, DataConfig("imagefolder", data_dir=str(tmp_path / "other")))
    assert re.search(message, str(caught.value))


def test_streamed_training_batches_equal_in_memory_ones_with_augmentation_and_any_worker_count(tmp_path):
    # The epoch plan (order, crops, flips) is drawn once per (seed, epoch), so decoding in
    # DataLoader workers changes nothing but where the work happens.
    _write_image_folder(tmp_path, per_class=5)
    memory = load_imagefolder(tmp_path, input_size=32)
    stream = load_imagefolder(tmp_path, input_size=32, memory_limit=0)
    kw = dict(shuffle=True, augment=memory.augment, seed=4, epoch=1, rank=1, world=2)
    expected = list(memory.train.batches(2, **kw))
    for workers in (0, 2):
        got = list(stream.train.batches(2, workers=workers, **kw))
        assert len(got) == len(expected) == 3
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(got, expected))
