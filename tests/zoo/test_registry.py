import pytest
import torch

from pdd_edge import zoo
from pdd_edge.errors import PddError

# Weights + biases (BN running statistics excluded). ResNet20/56 figures are the akamaster
# README's; VGG figures follow from the PDD authors' layout (3 linear layers of 512).
EXPECTED_PARAMS = {
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "vgg11": 9_756_426,
    "vgg13": 9_941_322,
    "vgg16": 15_253_578,
    "vgg19": 20_565_834,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_build_has_expected_parameter_count(name):
    model = zoo.build(name)
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMS[name]


@pytest.mark.parametrize("name", ["resnet20", "vgg11"])
def test_build_num_classes_sets_output_width(name):
    model = zoo.build(name, num_classes=37).eval()
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 37)


def test_spec_unknown_model_names_choices():
    with pytest.raises(PddError, match="unknown model 'resnet21'.*resnet20"):
        zoo.entry("resnet21")
