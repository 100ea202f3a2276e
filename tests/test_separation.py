"""Overlap-add separation (`apply_model`) with fake models whose exact output is known."""

from types import SimpleNamespace

import pytest
import torch
from conftest import make_tiny_config
from torch import nn

from modeling_tfswa import TFSWAUNet
from modeling_tfswa.separation_core import MAX_SHIFT_SECONDS, apply_model, blend_window

SAMPLE_RATE = 100  # 1-s segments of 100 samples keep every test tiny


class ScaleModel(nn.Module):
    """Returns `mixture * gains[s]` as stem `s` and records what it was called with."""

    def __init__(self, gains=(1.0, 0.5, -2.0), channels=2, offset=0.0):
        super().__init__()
        self.config = SimpleNamespace(
            stems=[f"stem{i}" for i in range(len(gains))],
            sample_rate=SAMPLE_RATE,
            audio_channels=channels,
            segment_seconds=1.0,
            overlap=0.25,
        )
        self.register_buffer("gains", torch.tensor(gains))
        self.offset = offset
        self.calls = []

    def forward(self, input_values):
        self.calls.append(
            SimpleNamespace(
                shape=tuple(input_values.shape),
                device=input_values.device,
                training=self.training,
                inference=torch.is_inference_mode_enabled(),
            )
        )
        waveforms = input_values[:, None] * self.gains[None, :, None, None] + self.offset
        return SimpleNamespace(waveforms=waveforms)


class PositionModel(ScaleModel):
    """Returns each sample's position inside its segment, so the blend's weighting is visible."""

    def forward(self, input_values):
        super().forward(input_values)
        batch, channels, length = input_values.shape
        positions = torch.arange(length, dtype=torch.float32)
        return SimpleNamespace(waveforms=positions.expand(batch, 1, channels, length).clone())


def reference_blend(num_samples, segment, stride, leads):
    """Weighted average of in-segment positions, written as a plain loop: `(num_samples,)`."""
    window = blend_window(segment)
    total, weights = torch.zeros(num_samples), torch.zeros(num_samples)
    for lead in leads:  # each pass's grid clamped into the track, duplicates dropped
        for start in sorted(
            {min(max(s, 0), num_samples - segment) for s in range(-lead, num_samples, stride)}
        ):
            for t in range(start, start + segment):
                total[t] += window[t - start] * (t - start)
                weights[t] += window[t - start]
    return total / weights


@pytest.mark.parametrize("num_samples", [37, 100, 100 * 3 + 17])  # shorter, equal, longer
@pytest.mark.parametrize("shifts", [0, 2])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_identity_model_returns_input(num_samples, shifts, batch_size):
    generator = torch.Generator().manual_seed(0)
    mixture = torch.randn(2, num_samples, generator=generator)
    model = ScaleModel()
    stems = apply_model(
        model,
        mixture,
        segment_seconds=1.0,
        overlap=0.25,
        shifts=shifts,
        batch_size=batch_size,
        generator=generator,
    )
    assert stems.shape == (3, 2, num_samples)
    expected = mixture[None] * model.gains[:, None, None]
    assert (stems - expected).abs().max() < 1e-5
    assert all(call.shape[0] <= batch_size for call in model.calls)
    passes = max(shifts, 1)
    assert sum(call.shape[0] for call in model.calls) >= passes


def test_segments_shorter_than_the_largest_shift():
    # A shifted pass's grid starts before the track: its first segments clamp to sample 0.
    mixture = torch.randn(2, 333)
    stems = apply_model(ScaleModel(), mixture, segment_seconds=0.2, shifts=4)
    assert (stems - mixture[None] * ScaleModel().gains[:, None, None]).abs().max() < 1e-5


def test_segments_batches_and_lengths():
    model = ScaleModel(gains=(1.0,))
    mixture = torch.randn(2, 1000)
    apply_model(model, mixture, segment_seconds=1.0, overlap=0.25, batch_size=4)
    # stride 75: starts 0, 75, ..., 825 and the last segment moved back to end at the track's end
    # (900) -> 13 segments of 100 samples in ceil(13 / 4) calls
    assert [call.shape for call in model.calls] == [(4, 2, 100)] * 3 + [(1, 2, 100)]
    assert all(call.inference and not call.training for call in model.calls)


@pytest.mark.parametrize("num_samples", [37, 1000, 1234])
@pytest.mark.parametrize("shifts", [0, 3])
def test_no_segment_holds_padding(num_samples, shifts):
    # Zero padding would shift a model's per-segment input statistics: every segment is a slice of
    # the track (a mixture without zeros gives segments without zeros).
    model = ScaleModel(gains=(1.0,))
    seen = []
    model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["input_values"]), with_kwargs=True
    )
    mixture = torch.rand(2, num_samples) + 1.0
    apply_model(model, mixture, segment_seconds=0.5, overlap=0.25, shifts=shifts, batch_size=2)
    segments = torch.cat(seen)
    assert segments.shape[-1] == min(50, num_samples) and segments.min() >= 1.0


def test_segment_and_overlap_default_to_the_model_config():
    model = ScaleModel(gains=(1.0,))
    model.config.segment_seconds, model.config.overlap = 0.5, 0.5
    apply_model(model, torch.randn(2, 200))  # 50-sample segments, stride 25: starts 0, 25, ..., 150
    assert [call.shape for call in model.calls] == [(4, 2, 50), (3, 2, 50)]
    del model.config.segment_seconds
    with pytest.raises(ValueError, match="segment_seconds"):
        apply_model(model, torch.randn(2, 200))


def test_streamed_blocks_tile_the_track_and_equal_the_in_memory_result():
    from modeling_tfswa.separation_core import iter_separated

    model = ScaleModel(gains=(1.0, -0.5))
    mixture = torch.randn(2, 1234)
    generator = torch.Generator().manual_seed(3)
    whole = apply_model(model, mixture, shifts=2, batch_size=3, generator=generator)
    generator = torch.Generator().manual_seed(3)
    blocks = list(
        iter_separated(
            model,
            lambda track, start, length: mixture[:, start : start + length],
            1,
            mixture.shape[-1],
            shifts=2,
            batch_size=3,
            generator=generator,
        )
    )
    assert blocks[0][0] == 0 and blocks[-1][1] == 1234 and len(blocks) > 3
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
    assert all(block.shape[-1] <= 3 * 100 + 100 for _, _, block in blocks)  # a few segments
    streamed = torch.cat([block for _, _, block in blocks], dim=-1)[0]
    assert (streamed - whole).abs().max() == 0


def test_blend_is_the_normalised_weighted_average():
    model = PositionModel(gains=(1.0,))
    stems = apply_model(model, torch.zeros(2, 250), segment_seconds=0.4, overlap=0.5)
    expected = reference_blend(250, segment=40, stride=20, leads=[0])
    assert torch.allclose(stems[0, 0], expected, atol=1e-5)
    assert torch.allclose(stems[0, 1], expected, atol=1e-5)


def test_shift_offsets_follow_the_generator():
    leads = torch.randint(
        0,
        int(MAX_SHIFT_SECONDS * SAMPLE_RATE) + 1,
        (3,),
        generator=torch.Generator().manual_seed(7),
    ).tolist()
    model = PositionModel(gains=(1.0,))
    stems = apply_model(
        model,
        torch.zeros(1, 2, 230),
        segment_seconds=0.4,
        overlap=0.25,
        shifts=3,
        generator=torch.Generator().manual_seed(7),
    )
    expected = reference_blend(230, segment=40, stride=30, leads=leads)
    assert torch.allclose(stems[0, 0, 0], expected, atol=1e-4)
    # The shifted passes differ from the unshifted one (otherwise the augmentation does nothing).
    unshifted = reference_blend(230, segment=40, stride=30, leads=[0])
    assert not torch.allclose(expected, unshifted, atol=1e-2)


def test_batched_mixtures_match_single_ones():
    mixtures = torch.randn(3, 2, 260)
    model = PositionModel(gains=(1.0,))
    batched = apply_model(model, mixtures + 0, segment_seconds=0.5, batch_size=5)
    for mixture, stems in zip(mixtures, batched):
        single = apply_model(model, mixture, segment_seconds=0.5, batch_size=5)
        assert torch.equal(single, stems)
    identity = apply_model(ScaleModel(), mixtures, segment_seconds=0.5, batch_size=5)
    assert (identity[:, 0] - mixtures).abs().max() < 1e-5


def test_output_stays_with_the_mixture_and_keeps_its_dtype():
    model = ScaleModel(offset=0.25).train()
    mixture = torch.randn(2, 333, dtype=torch.float64)
    stems = apply_model(model, mixture, segment_seconds=1.0, device="cpu")
    assert stems.dtype == torch.float64 and stems.device == mixture.device
    assert not stems.is_inference()  # usable outside inference mode (e.g. in-place edits)
    assert (stems[0] - (mixture + 0.25)).abs().max() < 1e-5
    assert all(call.device.type == "cpu" for call in model.calls)
    assert model.training  # mode restored


@pytest.mark.parametrize(
    "kwargs, mixture, message",
    [
        ({}, torch.randn(1, 100), "channels"),
        ({}, torch.zeros(2, 100, dtype=torch.int16), "floating point"),
        ({}, torch.zeros(2, 0), "no samples"),
        ({"overlap": 1.0}, torch.randn(2, 100), "overlap"),
        ({"shifts": -1}, torch.randn(2, 100), "shifts"),
        ({"batch_size": 0}, torch.randn(2, 100), "batch_size"),
        ({"segment_seconds": 0.0}, torch.randn(2, 100), "segment_seconds"),
    ],
)
def test_bad_arguments_raise(kwargs, mixture, message):
    with pytest.raises(ValueError, match=message):
        apply_model(ScaleModel(), mixture, **kwargs)


def test_bad_model_output_raises():
    class Cropping(ScaleModel):
        def forward(self, input_values):
            return SimpleNamespace(waveforms=super().forward(input_values).waveforms[..., :-1])

    with pytest.raises(ValueError, match="expected"):
        apply_model(Cropping(), torch.randn(2, 300), segment_seconds=1.0)


def test_tiny_tfswa_unet_one_segment_equals_forward():
    torch.manual_seed(0)
    model = TFSWAUNet(make_tiny_config(sample_rate=8000)).eval()
    mixture = torch.randn(2, 3000)
    stems = apply_model(model, mixture, segment_seconds=1.0)
    with torch.no_grad():
        direct = model(mixture[None]).waveforms[0]
    assert stems.shape == (2, 2, 3000)
    assert torch.allclose(stems, direct, atol=1e-5)
    chunked = apply_model(model, torch.randn(2, 20000), segment_seconds=0.5, shifts=1)
    assert chunked.shape == (2, 2, 20000) and torch.isfinite(chunked).all()


def test_device_auto_picks_cpu_here_and_a_missing_device_says_so(capsys):
    from modeling_tfswa.cli.separate import main
    from modeling_tfswa.separation_core import resolve_device

    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has an accelerator")
    assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")
    with pytest.raises(ValueError, match="'cuda': this machine has 0 CUDA device"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="MPS is not available"):
        resolve_device("mps")
    with pytest.raises(SystemExit):
        main(["song.wav", "--model", "unused", "--device", "cuda"])
    assert "--device: device 'cuda': this machine has 0 CUDA device(s)" in capsys.readouterr().err


def test_bfloat16_autocast_stays_close_to_float32():
    from conftest import make_tiny_config

    from modeling_tfswa import TFSWAUNet

    torch.manual_seed(0)
    model = TFSWAUNet(make_tiny_config(sample_rate=8000, segment_seconds=0.25)).eval()
    with torch.no_grad():  # away from the initial identity-like masks, so precision shows
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    mixture = 0.1 * torch.randn(2, 4000)
    full = apply_model(model, mixture, dtype="float32")
    half = apply_model(model, mixture, dtype="bfloat16")
    assert half.dtype == torch.float32
    assert 0 < (half - full).abs().max() < 0.05 * full.abs().max()
