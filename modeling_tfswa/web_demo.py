"""The web demo behind `app.py` (Gradio): upload a song, pick stems, listen, look, download.

[`build_demo`] returns a `gradio.Blocks` page around a [`Separator`]: an upload (or the demo
mixture, when there is one), the stems to keep or a two-stems split, and after separating one audio
player per stem, a spectrogram image of the mixture and the stems, and a zip of the stem files.
The work is [`separate_file`] (streamed, as `tfswa-separate` does), so the page accepts what the
command accepts and rejects the rest with the same one-line messages, shown on the page.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

from .audio import AudioError
from .separation import COMPLEMENT_PREFIX, Separator, separate_file

#: Choice of the two-stems menu that keeps the model's own stems.
ALL_STEMS = "all stems"


def separate_for_page(
    separator: Separator,
    song: str | os.PathLike,
    stems: list[str] | None,
    two_stems: str | None,
    out_dir: str | os.PathLike,
) -> tuple[dict[str, Path], Path, Path]:
    """Separate `song` into `out_dir/<track>/` with a spectrogram PNG, and zip the stems.

    Returns:
        `({stem: wav path}, spectrogram png, zip path)`.
    """
    result = separate_file(
        separator,
        song,
        out_dir,
        stems=None if two_stems else stems,
        two_stems=two_stems,
        subtype="PCM_16",
        overwrite=True,
        plot=True,
    )
    archive = Path(out_dir) / f"{result.track}-stems.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in result.paths:
            bundle.write(path, f"{result.track}/{path.name}")
    return {path.stem: path for path in result.paths}, result.plot, archive


def build_demo(separator: Separator, example: str | os.PathLike | None = None):
    """The page (`gradio.Blocks`); `example`: a mixture offered as "the demo mixture"."""
    import gradio as gr

    stems = separator.stems
    outputs = stems + [COMPLEMENT_PREFIX + stem for stem in stems]

    def run(song, chosen, split, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 (Gradio API)
        if not song:
            raise gr.Error("Upload a song (or pick the demo mixture) first.")
        two_stems = None if split in (None, ALL_STEMS) else split
        if two_stems is None and not chosen:
            raise gr.Error("Choose at least one stem.")
        progress(0, desc="separating")
        try:
            files, plot, archive = separate_for_page(
                separator, song, chosen, two_stems, tempfile.mkdtemp(prefix="tfswa-app-")
            )
        except (AudioError, ValueError, OSError) as error:
            raise gr.Error(str(error)) from None
        players = [
            gr.Audio(value=str(files[name]), label=name, visible=True)
            if name in files
            else gr.Audio(value=None, visible=False)
            for name in outputs
        ]
        return [*players, str(plot), str(archive)]

    with gr.Blocks(title="TFSWA-UNet music source separation") as demo:
        gr.Markdown(
            f"# TFSWA-UNet music source separation\nUpload a song; the model separates "
            f"{', '.join(stems)} ({separator.sample_rate} Hz, any input rate and mono or stereo)."
        )
        with gr.Row():
            with gr.Column():
                song = gr.Audio(label="Song", type="filepath", sources=["upload"])
                if example is not None:
                    gr.Examples([[str(example)]], inputs=[song], label="Demo mixture")
                chosen = gr.CheckboxGroup(stems, value=stems, label="Stems")
                split = gr.Dropdown(
                    [ALL_STEMS, *stems],
                    value=ALL_STEMS,
                    label="Two stems (a stem and the rest of the mix)",
                )
                button = gr.Button("Separate", variant="primary")
            with gr.Column():
                players = [
                    gr.Audio(label=name, visible=False, interactive=False, elem_id=f"stem-{name}")
                    for name in outputs
                ]
                image = gr.Image(label="Spectrograms", type="filepath", elem_id="spectrograms")
                archive = gr.File(label="All stems (zip)", elem_id="stems-zip")
        button.click(run, inputs=[song, chosen, split], outputs=[*players, image, archive])
    return demo


__all__ = ["build_demo", "separate_for_page"]
