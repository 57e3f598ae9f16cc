"""`pdd-edge simplify`: onnxsim with BatchNormalization folded, checked against the original."""

from __future__ import annotations

from pdd_edge.cli import options
from pdd_edge.cli.console import err, out, print_json, print_parity, size

from pdd_edge.errors import require_torch
from pdd_edge.fileio import check_output


def simplify_command(
    model_path: options.OnnxPath,
    *,
    out_path: options.Out,
    dataset: options.RecordedDataset = None,
    data_dir: options.DataDir = None,
    download: options.Download = False,
    input_size: options.InputSize = None,
    mean: options.Mean = None,
    std: options.Std = None,
    parity_images: options.ParityImages = 512,
    json_out: options.Json = False,
) -> None:
    """Simplify with onnxsim (BatchNormalization folded into Conv) and check it against the original."""
    require_torch("pdd-edge simplify")  # the parity images are read with torch
    from pdd_edge.onnx.parity import ParityConfig
    from pdd_edge.stages import simplify

    cfg = simplify.SimplifyConfig(data=options.data_config(dataset, data_dir, download, input_size),
                                  norm=options.norm_override(mean, std), parity=ParityConfig(images=parity_images))
    check_output(out_path, model_path)
    r = simplify.simplify_model(cfg, model_path, out_path)
    if json_out:
        print_json(r)
        return
    out.print(f"{r.path}: nodes {r.nodes_before} -> {r.nodes_after}, BatchNormalization {r.batchnorm_before} -> "
              f"{r.batchnorm_after}, {size(r.size_before)} -> {size(r.size_after)}")
    print_parity(r, str(model_path))
    if r.batchnorm_after:
        err.print(f"note: {r.batchnorm_after} BatchNormalization nodes could not be folded "
                  "(their input is not the only use of a Conv output)")
