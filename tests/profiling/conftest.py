"""Zoo models exported to ONNX once per test session (torch is a test dependency)."""

from __future__ import annotations

import pytest


def export(model, path, input_size=(32, 32)) -> None:
    import torch

    torch.onnx.export(model.eval(), torch.zeros(1, 3, *input_size), str(path), input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=17, dynamo=False)


def pruned_resnet20_keep() -> dict[str, list[int]]:
    """resnet20 with channels removed everywhere, and one block whose inner channels are all gone."""
    from pdd_edge import zoo

    keep = {k: v[::2] if k.endswith("gate_mid") else v[: max(1, 3 * len(v) // 4)] for k, v in zoo.full_keep("resnet20").items()}
    keep["layer2.1.gate_mid"] = []
    return keep


@pytest.fixture(scope="session")
def zoo_onnx(tmp_path_factory):
    """name -> (path of the exported ONNX, the torch model): resnet20, vgg11, pruned resnet20."""
    from pdd_edge import zoo

    folder = tmp_path_factory.mktemp("zoo_onnx")
    built = {
        "resnet20": zoo.build("resnet20"),
        "vgg11": zoo.build("vgg11"),
        "resnet20-pruned": zoo.build("resnet20", keep=pruned_resnet20_keep()),
    }
    paths = {}
    for name, model in built.items():
        path = folder / f"{name}.onnx"
        export(model, path)
        paths[name] = (path, model)
    return paths
