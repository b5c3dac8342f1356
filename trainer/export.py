"""The kept model in deployable files: uint8 images (B, C, H, W) in, logits out, the training
normalisation inside (`weights.Deployable`), the batch size free.

    pt2    torch.export's ExportedProgram (`torch.export.load(path).module()`; AOTInductor and
           ExecuTorch start from it). TorchScript is deprecated from torch 2.9 on: not offered.
    onnx   ONNX through torch.onnx's exporter (needs the `onnx` extra: onnx, onnxscript); run it
           with onnxruntime, or onnx's reference evaluator.

`run_exported` loads a file back and computes logits, so the export can be checked against the
model it came from (`budgetsweep evaluate --export` does, on a test batch).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from .weights import Deployable, Kept

FORMATS = {"pt2": "model.pt2", "onnx": "model.onnx"}  # format -> file name next to weights.pt


class ExportError(ValueError):
    """An export that cannot be made here (an unknown format, a missing package); one line."""


def _require(module: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError:
        raise ExportError(
            f"--export onnx: the {module} package is not installed: pip install 'budgetsweep[onnx]' "
            f'(from a checkout: pip install -e ".[onnx]")'
        ) from None


def export(kept: Kept, fmt: str, path: str | Path, example: torch.Tensor) -> Path:
    """Write the model in `fmt` to `path`; `example` is a uint8 batch of at least 2 images (its
    batch size is left free in the file)."""
    if fmt not in FORMATS:
        raise ExportError(f"--export: unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    if example.shape[0] < 2:
        raise ExportError("export: the example batch needs at least 2 images (a batch of 1 fixes the batch size)")
    path = Path(path)
    module = Deployable(kept).eval()
    batch = {0: torch.export.Dim("batch")}
    with torch.no_grad():
        if fmt == "pt2":
            torch.export.save(torch.export.export(module, (example,), dynamic_shapes=(batch,)), str(path))
        else:
            _require("onnx")
            _require("onnxscript")
            torch.onnx.export(
                module,
                (example,),
                str(path),
                dynamo=True,
                input_names=["images"],
                output_names=["logits"],
                dynamic_shapes=(batch,),
                verbose=False,
            )
    return path


def run_exported(path: str | Path, images: torch.Tensor) -> torch.Tensor:
    """Logits of an exported file on a uint8 batch (CPU)."""
    path = Path(path)
    if path.suffix == ".pt2":
        with torch.no_grad():
            return torch.export.load(str(path)).module()(images.cpu())
    _require("onnx")
    try:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {"images": images.cpu().numpy()})[0])
    except ImportError:  # onnx's own evaluator: slow, enough for a check
        import onnx
        from onnx.reference import ReferenceEvaluator

        return torch.from_numpy(ReferenceEvaluator(onnx.load(str(path))).run(None, {"images": images.cpu().numpy()})[0])
