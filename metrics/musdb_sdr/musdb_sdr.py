"""MUSDB18 SDRs as a Hugging Face `evaluate` metric: global SDR (uSDR), chunk-level SDR (cSDR) and
museval's BSSEval v4 framewise SDR (median over 1-s frames), all from `modeling_tfswa.metrics`.

Load it from a local path: `evaluate.load("metrics/musdb_sdr")`.
"""

import datasets
import evaluate
import numpy as np
import torch

from modeling_tfswa.metrics import csdr, framewise_sdr, median_over_frames, median_over_tracks, sdr

_CITATION = """\
@inproceedings{sisec2018,
  title={The 2018 Signal Separation Evaluation Campaign},
  author={Stöter, Fabian-Robert and Liutkus, Antoine and Ito, Nobutaka},
  booktitle={Latent Variable Analysis and Signal Separation (LVA/ICA)},
  year={2018}
}
@article{mdx2021,
  title={Music Demixing Challenge 2021},
  author={Mitsufuji, Yuki and Fabbro, Giorgio and Uhlich, Stefan and St{\\"o}ter, Fabian-Robert and D{\\'e}fossez, Alexandre and Kim, Minseok and Choi, Woosung and Yu, Chin-Yun and Cheuk, Kin-Wai},
  journal={Frontiers in Signal Processing},
  year={2022}
}
"""

_DESCRIPTION = """\
Signal-to-distortion ratios of separated music stems against the true stems, as MUSDB18 results are
reported: `sdr`, museval's BSSEval v4 SDR per 1-s frame (equal to museval's to ~1e-5 dB, without its
~0.6 s of CPU per second of audio), median over frames (NaN frames, silent or perfect, ignored),
then median over items; `csdr`, the SDR of 1-s chunks, median over chunks then items (Sound Demixing
Challenge 2023); `usdr`, the global SDR of each item, mean over items (Music Demixing Challenge
2021). Each item is one stem of one track; score stems separately to get per-stem numbers.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of arrays of shape `(channels, samples)` or `(samples,)`): estimated stems.
    references (`list` of arrays of the same shapes): true stems.
    sample_rate (`int`, defaults to 44100): sample rate; frames and chunks are 1 s long.
    return_per_item (`bool`, defaults to `False`): also return the lists `usdr_per_item`,
        `csdr_per_item` and `sdr_per_item`.
Returns:
    `usdr` (mean over items), `csdr` and `sdr` (medians over items), in dB.
Examples:
    >>> import numpy as np, evaluate
    >>> metric = evaluate.load("metrics/musdb_sdr")
    >>> reference = np.random.default_rng(0).standard_normal((2, 88200))
    >>> scores = metric.compute(predictions=[0.5 * reference], references=[reference])
    >>> round(scores["usdr"], 3)
    6.021
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MusdbSdr(evaluate.Metric):
    def _info(self):
        waveform = datasets.Sequence(datasets.Sequence(datasets.Value("float32")))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": waveform, "references": waveform}),
                datasets.Features(
                    {
                        "predictions": datasets.Sequence(datasets.Value("float32")),
                        "references": datasets.Sequence(datasets.Value("float32")),
                    }
                ),
            ],
            reference_urls=["https://github.com/sigsep/sigsep-mus-eval"],
        )

    def _compute(self, predictions, references, sample_rate=44100, return_per_item=False):
        if len(predictions) == 0:
            raise ValueError("musdb_sdr needs at least one (prediction, reference) pair")
        per_item = {"usdr": [], "csdr": [], "sdr": []}
        for index, (prediction, reference) in enumerate(zip(predictions, references)):
            estimate = np.atleast_2d(np.asarray(prediction, dtype=np.float32))
            target = np.atleast_2d(np.asarray(reference, dtype=np.float32))
            if estimate.shape != target.shape:
                raise ValueError(
                    f"item {index}: prediction {estimate.shape} and reference {target.shape} "
                    "must have the same (channels, samples) shape"
                )
            per_item["usdr"].append(float(sdr(target, estimate)))
            per_item["csdr"].append(float(csdr(target, estimate, sample_rate)))
            frames = framewise_sdr(target, estimate, sample_rate)
            per_item["sdr"].append(float(median_over_frames(frames)))
        usdr = torch.tensor(per_item["usdr"], dtype=torch.float64)
        scores = {
            "usdr": float(usdr[~usdr.isnan()].mean()),
            "csdr": float(median_over_tracks(per_item["csdr"])),
            "sdr": float(median_over_tracks(per_item["sdr"])),
        }
        if return_per_item:
            scores.update({f"{name}_per_item": values for name, values in per_item.items()})
        return scores
