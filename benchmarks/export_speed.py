"""Time `tfswa-export`: seconds to export (and verify) a TFSWA-UNet to ONNX and TorchScript.

Each (variant, format) runs in its own subprocess, so that no import or compilation cache of one
export speeds up the next. Variants are names of `benchmarks.quality.TFSWA_VARIANTS`, with random
weights. The last line of stdout is one JSON object:

    python -m benchmarks.export_speed [--variants tfswa-unet-default tfswa-unet] \
        [--formats onnx torchscript]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def measure(variant: str, format: str) -> dict:
    """Export one variant in this process; wall and CPU seconds of `export_model` (tracing or
    capture, conversion, writing and the check against PyTorch)."""
    import torch

    from benchmarks.quality import TFSWA_VARIANTS
    from modeling_tfswa import TFSWAConfig, TFSWAUNet
    from modeling_tfswa.export import export_model

    model = TFSWAUNet(TFSWAConfig(**TFSWA_VARIANTS[variant])).eval()
    # Random weights everywhere: the default init zeroes the mask head, which would make every
    # mask one constant and the export's check against PyTorch vacuous.
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"model.{'onnx' if format == 'onnx' else 'pt'}")
        wall, cpu = time.perf_counter(), time.process_time()
        result = export_model(model, format, path)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        size = os.path.getsize(path)
    return {
        "variant": variant,
        "format": format,
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "max_abs_diff": result.max_abs_diff,
        "file_mib": round(size / 2**20, 2),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["tfswa-unet-default"])
    parser.add_argument("--formats", nargs="+", default=["onnx", "torchscript"])
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(*args.one)))
        return
    from benchmarks.quality import TFSWA_VARIANTS
    from modeling_tfswa.export import EXPORTERS

    for name, known in (("variant", TFSWA_VARIANTS), ("format", EXPORTERS)):
        unknown = [v for v in getattr(args, name + "s") if v not in known]
        if unknown:
            parser.error(f"unknown {name} {unknown[0]!r}; known: {', '.join(sorted(known))}")
    results = []
    for variant in args.variants:
        for format in args.formats:
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.export_speed", "--one", variant, format],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
            print(
                f"{variant:28s} {format:12s} {results[-1]['seconds']:8.1f} s "
                f"(max |diff| {results[-1]['max_abs_diff']:.2g})",
                flush=True,
            )
    print(json.dumps({"benchmark": "export_speed", "results": results}))


if __name__ == "__main__":
    main()
