"""Decoder selection of streamed image folders (issue 25): PIL in the workers on the CPU, exactly as
before; batched torchvision decode_jpeg on the training device when it is a CUDA GPU."""

import numpy as np
import pytest
import torch

from pdd_edge.data.imagefolder import StreamSource, _Encoded, _encoded_batch, _load_image, decode_batch, jpeg_decoder
from pdd_edge.errors import PddError

SIZE = (24, 32)  # (height, width): not square, so a swapped axis shows


def write_images(folder, sizes=((40, 50), (33, 61), (64, 64))):
    """Smooth JPEGs of several sizes and one PNG, in class folders `a` and `b`."""
    from PIL import Image

    paths = []
    for i, (h, w) in enumerate(sizes + ((30, 45),)):
        yy, xx = np.mgrid[0:h, 0:w]
        pixels = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 127 // (h + w) + 60 * i], -1).astype(np.uint8)
        path = folder / "ab"[i % 2] / (f"{i}.png" if i == len(sizes) else f"{i}.jpg")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, quality=95)
        paths.append((str(path), i % 2))
    return paths


class Folder:
    def __init__(self, samples):
        self.samples = samples


def test_jpeg_decoder_is_pil_on_the_cpu_and_nvjpeg_on_a_cuda_device():
    assert jpeg_decoder(None) == "pil"
    assert jpeg_decoder(torch.device("cpu")) == "pil"
    assert jpeg_decoder(torch.device("cuda")) == "nvjpeg"
    assert jpeg_decoder(torch.device("cuda:1")) == "nvjpeg"


def test_stream_source_on_the_cpu_serves_pil_pixels_unchanged(tmp_path):
    samples = write_images(tmp_path)
    source = StreamSource(Folder(samples), SIZE, workers=0)
    x, y = next(source.batches(4, shuffle=False, augment=None, seed=0, epoch=0, device=torch.device("cpu")))
    expected = torch.stack([_load_image(p, SIZE) for p, _ in samples]).float().div_(255.0)
    assert torch.equal(x, expected) and y.tolist() == [0, 1, 0, 1]


def test_decode_batch_of_jpegs_and_a_png_matches_pil_within_rounding(tmp_path):
    # The GPU path's code run on the CPU (decode_jpeg takes a device): bytes of the JPEGs and the
    # PNG already decoded by the worker, one batched decode, each image resized to SIZE.
    samples = write_images(tmp_path)
    items, labels = _encoded_batch([_Encoded(samples, SIZE)[i] for i in range(len(samples))])
    assert [t.dim() for _, t in items] == [1, 1, 1, 3]  # JPEG bytes, then the PNG's pixels
    x = decode_batch(items, SIZE, torch.device("cpu"))
    pil = torch.stack([_load_image(p, SIZE) for p, _ in samples])
    assert x.dtype == torch.uint8 and x.shape == (4, 3, *SIZE) and labels.tolist() == [0, 1, 0, 1]
    diff = (x.int() - pil.int()).abs()
    assert torch.equal(x[3], pil[3])  # the PNG went through PIL itself
    assert diff.max() <= 2  # measured 1: the resamplers round differently, the images are the same


def test_decode_batch_names_the_corrupt_jpeg(tmp_path):
    samples = write_images(tmp_path)
    bad = tmp_path / "a" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"not a jpeg" * 10)
    items, _ = _encoded_batch([_Encoded(samples + [(str(bad), 0)], SIZE)[i] for i in range(len(samples) + 1)])
    with pytest.raises(PddError, match=r"imagefolder: cannot read image .*broken\.jpg .*remove or replace it"):
        decode_batch(items, SIZE, torch.device("cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_stream_source_on_cuda_decodes_on_the_gpu_close_to_pil(tmp_path):
    samples = write_images(tmp_path)
    source = StreamSource(Folder(samples), SIZE, workers=0)
    x, y = next(source.batches(4, shuffle=False, augment=None, seed=0, epoch=0, device=torch.device("cuda")))
    pil = torch.stack([_load_image(p, SIZE) for p, _ in samples]).float().div_(255.0)
    assert x.is_cuda and y.is_cuda and (x.cpu() - pil).abs().mean() < 1.0 / 255  # nvJPEG rounds its own way
