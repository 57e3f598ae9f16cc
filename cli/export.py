"""`pdd-edge export`: a checkpoint to ONNX, checked against PyTorch on real images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pdd_edge.cli import options
from pdd_edge.cli.console import out, print_json, print_parity, size

from pdd_edge.errors import require_torch
from pdd_edge.fileio import check_output


def export_command(
    checkpoint: Annotated[Path, typer.Argument(help="A pruned (or never-masked) checkpoint.")],
    *,
    out_path: options.Out,
    model: options.ThirdPartyModel = None,
    dataset: options.RecordedDataset = None,
    data_dir: options.DataDir = None,
    download: options.Download = False,
    input_size: options.InputSize = None,
    mean: options.Mean = None,
    std: options.Std = None,
    parity_images: options.ParityImages = 512,
    json_out: options.Json = False,
) -> None:
    """Export to ONNX (opset 18, dynamic batch, preprocessing in the metadata) and check it against PyTorch."""
    require_torch("pdd-edge export")
    from pdd_edge.onnx.parity import ParityConfig
    from pdd_edge.stages import export

    cfg = export.ExportConfig(data=options.data_config(dataset, data_dir, download, input_size), model=model,
                              norm=options.norm_override(mean, std), parity=ParityConfig(images=parity_images))
    check_output(out_path, checkpoint)
    r = export.export_checkpoint(cfg, checkpoint, out_path)
    if json_out:
        print_json(r)
        return
    out.print(f"{r.path}: {'pruned ' if r.pruned else ''}{r.model}, ONNX opset {r.opset}, {r.nodes} nodes, "
              f"{size(r.size_bytes)}")
    print_parity(r, "PyTorch")
