"""Fixtures of the CLI tests."""

from __future__ import annotations

import pytest
import torch

from pdd_edge import checkpoint as ckpt_io
from pdd_edge.zoo.masks import attach_masks, get_masks


@pytest.fixture(scope="module")
def teacher(digits_teacher):
    return digits_teacher


@pytest.fixture(scope="module")
def masked_ckpt(digits_teacher, tmp_path_factory):
    """The trained teacher's weights with PDD masks that close about 40 % of the channels."""
    model, info = ckpt_io.load(digits_teacher)
    torch.manual_seed(0)
    attach_masks(model)
    for mask in get_masks(model).values():
        mask.logits.data = torch.rand(mask.logits.shape) - 0.4
    path = tmp_path_factory.mktemp("masked") / "masked.pt"
    ckpt_io.save(path, ckpt_io.checkpoint_dict(model, model_name=info.model, preprocess=info.preprocess,
                                               classes=info.classes, dataset=info.dataset, record=info.record))
    return path
