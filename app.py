"""Web demo of a TFSWA-UNet model (Gradio; the Hugging Face Spaces convention).

    python app.py --model path/or/hub-id [--port 7860] [--example song.wav] [--device auto]

Upload a song (or pick the demo mixture), choose stems or a two-stems split, and get one audio
player per stem, spectrograms and a zip of the stems. Needs `pip install -e ".[app]"`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modeling_tfswa.cli.options import add_separation_flags, separation_options
from modeling_tfswa.separation import Separator
from modeling_tfswa.web_demo import build_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder (save_pretrained) or Hub id")
    parser.add_argument("--revision", default=None, help="Hub revision of the model")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve other machines")
    parser.add_argument(
        "--example",
        type=Path,
        default=None,
        help="demo mixture offered on the page (default: <model>/../demo/mixture.wav, the "
        "quickstart's, when it exists)",
    )
    add_separation_flags(parser)
    args = parser.parse_args(argv)
    options = separation_options(args, parser)
    try:
        separator = Separator.from_pretrained(args.model, revision=args.revision, **options)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    example = args.example
    if example is None and (Path(args.model).parent / "demo" / "mixture.wav").is_file():
        example = Path(args.model).parent / "demo" / "mixture.wav"
    if example is not None and not example.is_file():
        parser.error(f"--example {example}: no such file")
    separator.progress = True  # Gradio shows the tqdm bars on the page
    build_demo(separator, example).queue().launch(server_name=args.host, server_port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
