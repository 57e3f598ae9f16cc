"""A user-defined CNN with the structures a traced group must get right: a residual add, a
concatenation, a depthwise convolution, a grouped convolution and flatten into a linear layer.
Used as a `file.py:function` model spec in the tests."""

import torch
from torch import nn


class Branchy(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        self.res = nn.Sequential(nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                                 nn.Conv2d(w, w, (1, 3), padding=(0, 1), bias=False), nn.BatchNorm2d(w))
        self.left = nn.Sequential(nn.Conv2d(w, w, 1), nn.ReLU())
        self.right = nn.Sequential(nn.Conv2d(w, 2 * w, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU6(),
                                   nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1, groups=2 * w, bias=False),  # depthwise
                                   nn.BatchNorm2d(2 * w), nn.ReLU6(), nn.Upsample(scale_factor=2))
        self.mix = nn.Sequential(nn.Conv2d(3 * w, 4 * w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(),
                                 nn.Conv2d(4 * w, 4 * w, 3, padding=1, groups=4, bias=False),  # grouped
                                 nn.BatchNorm2d(4 * w), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.head = nn.Linear(4 * w * 4, num_classes)  # flatten (C, 2, 2) into a linear layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.res(x))
        x = torch.cat([self.left(x), self.right(x)], dim=1)
        x = self.pool(self.mix(x))
        return self.head(torch.flatten(x, 1))


def branchy(num_classes: int = 10, width: int = 16) -> nn.Module:
    return Branchy(num_classes, width)


def fixed_head() -> nn.Module:
    """A builder that ignores num_classes: always 5 outputs."""
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))


def not_a_module(num_classes: int = 10):
    return "a string"


def shuffled(num_classes: int = 10) -> nn.Module:
    class Shuffle(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 8, 1)
            self.b = nn.Conv2d(8, 8, 1)
            self.head = nn.Linear(8, num_classes)

        def forward(self, x):
            x = self.a(x)
            n, c, h, w = x.shape
            x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)  # channel shuffle
            return self.head(self.b(x).mean((2, 3)))

    return Shuffle()


def data_dependent(num_classes: int = 10) -> nn.Module:
    """Takes one of two layers depending on the image: a trace sees only one of them."""

    class Branch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 8, 3, padding=1)
            self.b = nn.Conv2d(8, 8, 3, padding=1)
            self.c = nn.Conv2d(8, 8, 3, padding=1)
            self.head = nn.Linear(8, num_classes)

        def forward(self, x):
            bright = x.mean() > 0
            x = torch.relu(self.a(x))
            x = self.b(x) if bright else self.c(x)
            return self.head(x.mean((2, 3)))

    return Branch()


def with_transposed(num_classes: int = 10) -> nn.Module:
    """A transposed convolution (not sliced: its group stays unmasked) between prunable layers."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.ConvTranspose2d(8, 8, 2, stride=2), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))
