import json
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from conftest import make_tiny_config
from transformers import AutoConfig, AutoModel

from modeling_tfswa import TFSWAConfig, TFSWAUNet
from modeling_tfswa import spectral as spectral_module
from modeling_tfswa.modeling_tfswa import (
    TFSWAAttention,
    pad_grid,
    window_attention_mask,
    window_partition,
    window_reverse,
)
from modeling_tfswa.spectral import SpectralTransform, istft, stft

ODD_LENGTH = 44100 + 123


def randomize(model: TFSWAUNet, seed: int = 0) -> TFSWAUNet:
    """Random weights everywhere (the default init zeroes the mask head, which hides bugs)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model


@pytest.mark.parametrize(
    "stems",
    [["vocals"], ["vocals", "accompaniment"], ["vocals", "drums", "bass", "other"]],
)
@pytest.mark.parametrize("length", [ODD_LENGTH, 1000, 1])
def test_output_shapes(stems, length):
    model = TFSWAUNet(make_tiny_config(stems)).eval()
    mixture = torch.randn(2, 2, length)
    with torch.no_grad():
        out = model(mixture)
    frames = length // 64 + 1
    assert out.waveforms.shape == (2, len(stems), 2, length)
    assert out.spectrograms.shape == (2, len(stems), 2, 129, frames)
    assert out.masks.shape == (2, len(stems), 2, 129, frames)
    assert out.masks.is_complex()
    assert torch.isfinite(out.waveforms).all()


BANDS = [[16, 2], [64, 4], [130, 8]]  # 129 bins at the tiny n_fft: 8 + 12 + 9 tokens per frame


@pytest.mark.parametrize(
    "layout",
    [
        {"patch_size": [1, 4]},
        {"patch_size": [2, 4]},
        {"patch_size": [2, 4], "frequency_bands": BANDS},
    ],
)
@pytest.mark.parametrize("mask_type", ["complex", "ratio"])
def test_masks_and_stem_spectrograms_are_in_the_stft_memory_order(layout, mask_type):
    """Frames outer, bins inner, like `torch.stft`'s output, so that the multiply and the inverse
    STFT need no copy (a strided mask view made both copy: 40% more CPU per separated second)."""
    config = make_tiny_config(["a", "b", "c"], mask_type=mask_type, **layout)
    model = randomize(TFSWAUNet(config)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 2, 3000))
    for name in ("masks", "spectrograms"):
        tensor = getattr(out, name)
        frames_major = tensor.transpose(-1, -2)  # (batch, stems, channels, frames, bins)
        assert frames_major.stride(-1) == 1, name
        flat = tensor.reshape(-1, *tensor.shape[-2:])
        assert flat.data_ptr() == tensor.data_ptr() and flat._base is not None, name  # a view


def test_frequency_bands_give_each_band_its_patches_and_mask_projection():
    config = make_tiny_config(["a", "b", "c"], frequency_bands=BANDS, mixture_consistency=True)
    assert config.frequency_patches == [(0, 16, 2), (16, 64, 4), (64, 129, 8)]
    model = randomize(TFSWAUNet(config)).eval()
    estimator = model.mask_estimator
    assert [p.kernel_size for p in estimator.patch_embedding.projections] == [
        (1, 2),
        (1, 4),
        (1, 8),
    ]
    assert estimator.patch_embedding.frequency_embedding.shape[0] == 8 + 12 + 9
    assert [h.out_features for h in estimator.heads] == [
        w * config.num_mask_channels for w in (2, 4, 8)
    ]
    mixture = torch.randn(2, 2, 3000)
    with torch.no_grad():
        out = model(mixture)
    assert out.masks.shape == (2, 3, 2, 129, model.spectral.num_frames(3000))
    torch.testing.assert_close(out.waveforms.sum(1), mixture, atol=1e-4, rtol=0)  # consistent
    # Each band's masks come from its own projection: zeroing the low band's head changes only
    # the low bins' masks.
    with torch.no_grad():
        estimator.heads[0].weight.zero_()
        changed = (model(mixture).masks - out.masks).abs().amax(dim=(0, 1, 2, 4))
    assert changed[:16].max() > 0 and changed[16:].max() == 0


def test_initial_masks_split_the_mixture_evenly():
    model = TFSWAUNet(make_tiny_config(["a", "b", "c"])).eval()
    mixture = torch.randn(1, 2, 8000)
    with torch.no_grad():
        estimates = model(mixture).waveforms
    torch.testing.assert_close(estimates.sum(1), mixture, atol=1e-5, rtol=0)


def test_ratio_masks_are_real_and_bounded():
    model = randomize(TFSWAUNet(make_tiny_config(mask_type="ratio"))).eval()
    with torch.no_grad():
        masks = model(torch.randn(1, 2, 4000)).masks
    assert not masks.is_complex()
    assert masks.min() >= 0 and masks.max() <= 1


@pytest.mark.parametrize("mask_type", ["complex", "ratio"])
def test_mixture_consistency_makes_the_stems_sum_to_the_mixture(mask_type):
    mixture = torch.randn(2, 2, 3000)
    plain = randomize(TFSWAUNet(make_tiny_config(mask_type=mask_type))).eval()
    consistent = TFSWAUNet(make_tiny_config(mask_type=mask_type, mixture_consistency=True))
    consistent.load_state_dict(plain.state_dict())
    with torch.no_grad():
        free, out = plain(mixture).waveforms, consistent.eval()(mixture)
    summed = out.waveforms
    assert (free.sum(1) - mixture).abs().max() > 1e-2  # random masks do not sum to one
    if mask_type == "complex":  # projected in the mask head: the masks applied sum to one
        torch.testing.assert_close(out.masks.sum(1), torch.ones_like(out.masks[:, 0]))
        mixture_spec = consistent.spectral.stft(mixture).unsqueeze(1)
        torch.testing.assert_close(out.spectrograms, out.masks * mixture_spec)
    torch.testing.assert_close(summed.sum(1), mixture, atol=1e-5, rtol=0)
    # every stem's waveform is its spectrogram's inverse STFT
    expected = consistent.spectral.istft(out.spectrograms, mixture.shape[-1])
    torch.testing.assert_close(summed, expected, atol=1e-5, rtol=0)
    # the projection moves every stem by the same share of the residual
    shift = summed - free
    torch.testing.assert_close(shift, shift[:, :1].expand_as(shift), atol=1e-5, rtol=0)


def test_one_stem_with_mixture_consistency_is_refused():
    # its only output would be the mixture: a config error, not a silently useless model
    with pytest.raises(ValueError, match="mixture_consistency.*single stem"):
        make_tiny_config(["vocals"], mixture_consistency=True)
    assert not make_tiny_config(["vocals"]).mixture_consistency


def test_default_config_runs_with_its_bands_and_consistency():
    # the defaults (frequency bands for its n_fft, mixture consistency) at a test size
    config = TFSWAConfig(
        n_fft=256, hop_length=64, dims=[8, 16], depths=[1, 1], num_heads=[1, 2], window_size=[4, 4]
    )
    assert config.frequency_bands == [[4, 2], [16, 4], [64, 8], [129, 16]]
    assert config.mixture_consistency and config.drop_path_rate == 0.0
    model = randomize(TFSWAUNet(config)).eval()
    mixture = torch.randn(1, 2, 3000)
    with torch.no_grad():
        out = model(mixture)
    assert out.waveforms.shape == (1, 4, 2, 3000)
    torch.testing.assert_close(out.waveforms.sum(1), mixture, atol=1e-5, rtol=0)


@pytest.mark.parametrize("channels", [1, 2])
def test_log_power_input_ignores_gain_and_fixed_equalisation(channels, tmp_path):
    torch.manual_seed(0)
    config = make_tiny_config(audio_channels=channels, log_power_input=True)
    assert config.num_input_features == 3 * channels
    model = randomize(TFSWAUNet(config)).eval()
    estimator = model.mask_estimator
    mixture = torch.randn(2, channels, 6000)
    spectrogram = torch.view_as_real(model.spectral.stft(mixture)).movedim(-1, 2)
    features = spectrogram.flatten(1, 2).transpose(2, 3)  # (b, 2C, frames, bins)
    logs = estimator.log_power(features)
    assert logs.shape == (2, channels, features.shape[2], features.shape[3])
    torch.testing.assert_close(logs, estimator.log_power(10 * features), atol=1e-4, rtol=0)
    # the log power of a bin follows its changes over time, in dB-like units
    torch.testing.assert_close(
        logs.mean(dim=(1, 2)), torch.zeros_like(logs[:, 0, 0]), atol=1e-4, rtol=0
    )
    # a fixed equalisation (a tilt across bins) cancels up to the one scale per example, but where
    # the floor (relative to the mean power, which the tilt moves) meets near-zero bins: up to
    # 0.4% of the bins of white noise over 40 seeds (without the per-bin centring nearly all move)
    tilted = estimator.log_power(features * torch.linspace(4, 0.25, features.shape[-1]))
    scale = logs.std(dim=(1, 2, 3), keepdim=True) / tilted.std(dim=(1, 2, 3), keepdim=True)
    assert ((tilted * scale - logs).abs() > 0.05).float().mean() < 1e-2
    # an onset in one bin range shows in the log power, which the linear embedding cannot form
    onset = features.clone()
    onset[:, :, features.shape[2] // 2 :, 10:20] *= 30
    jump = estimator.log_power(onset)[:, :, :, 10:20]
    half = features.shape[2] // 2
    assert (jump[:, :, half:].mean() - jump[:, :, :half].mean()) > 1.0
    with torch.no_grad():
        out = model(mixture)
        assert torch.isfinite(out.waveforms).all()
        assert model(torch.zeros(1, channels, 3000)).waveforms.abs().max() == 0  # finite
    model.save_pretrained(tmp_path)
    loaded = TFSWAUNet.from_pretrained(tmp_path).eval()
    assert loaded.config.log_power_input
    with torch.no_grad():
        torch.testing.assert_close(loaded(mixture).waveforms, out.waveforms)


def test_log_power_input_is_checked():
    assert TFSWAConfig().num_input_features == 6  # real, imaginary and log power per channel
    with pytest.raises(ValueError, match="log_power_input"):
        make_tiny_config(log_power_input="bin")


@pytest.mark.parametrize(
    "key, before, now",
    [("log_power_input", False, True), ("mlp_conv_kernel_size", 0, 3)],
)
def test_a_model_saved_before_a_key_loads_as_it_was_trained(tmp_path, key, before, now):
    # The log power input is a default since 2026-12-05, the feed-forward convolution since
    # 2026-12-06; a config saved before the key existed holds no value for it and was trained
    # without it: it must not grow (randomly initialised) layers or inputs.
    assert getattr(TFSWAConfig(), key) == now
    model = randomize(TFSWAUNet(make_tiny_config(**{key: before}))).eval()
    model.save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    saved = json.loads(config_file.read_text())
    del saved[key]
    config_file.write_text(json.dumps(saved))
    mixture = torch.randn(1, 2, 3000)
    for loaded in (TFSWAUNet.from_pretrained(tmp_path), AutoModel.from_pretrained(tmp_path)):
        value = getattr(loaded.config, key)
        assert value == before and type(value) is type(before), value
        assert loaded.state_dict().keys() == model.state_dict().keys()
        with torch.no_grad():
            torch.testing.assert_close(loaded.eval()(mixture).waveforms, model(mixture).waveforms)
    value = getattr(AutoConfig.from_pretrained(tmp_path), key)
    assert value == before and type(value) is type(before), value
    # a saved value and an explicit override win over the fill-in
    assert getattr(TFSWAConfig.from_pretrained(tmp_path, **{key: now}), key) == now
    make_tiny_config(**{key: now}).save_pretrained(tmp_path / "new")
    assert getattr(TFSWAConfig.from_pretrained(tmp_path / "new"), key) == now


def test_mono_model_and_wrong_channels():
    model = TFSWAUNet(make_tiny_config(audio_channels=1)).eval()
    assert model(torch.randn(1, 1, 3000)).waveforms.shape == (1, 2, 1, 3000)
    with pytest.raises(ValueError, match="channels=1"):
        model(torch.randn(1, 2, 3000))


@pytest.mark.parametrize("length", [1, 100, 1000, ODD_LENGTH])
def test_stft_istft_identity_mask_reconstruction(length):
    spectral = SpectralTransform(n_fft=256, hop_length=64)
    wave = torch.randn(3, 2, length)
    assert (spectral.istft(spectral.stft(wave), length) - wave).abs().max() < 1e-5


@pytest.mark.parametrize("chunk_bytes", [1, 3 * 4 * 256 * 40, 2**30])
def test_istft_in_chunks_equals_one_call(monkeypatch, chunk_bytes):
    """On the CPU the inverse STFT runs over chunks of signals (cache-sized): 1 byte gives one
    signal per call, 3 signals of 40 frames per call leaves a shorter last chunk, 1 GiB one call."""
    monkeypatch.setattr(spectral_module, "ISTFT_CHUNK_BYTES", chunk_bytes)
    spectral = SpectralTransform(n_fft=256, hop_length=64)
    spec = spectral.stft(torch.randn(2, 5, 2500))  # 10 signals of 40 frames
    expected = torch.istft(
        spec.reshape(10, 129, 40), 256, 64, window=spectral.window, center=True, length=2500
    )
    torch.testing.assert_close(spectral.istft(spec, 2500), expected.reshape(2, 5, 2500))
    assert spectral.istft(spec[:0], 2500).shape == (0, 5, 2500)


@pytest.mark.parametrize(("n_fft", "hop"), [(2048, 1024), (2048, 768), (2048, 512), (256, 64)])
@pytest.mark.parametrize("extra", [-7, 0, 50])
def test_istft_equals_torch_istft(n_fft, hop, extra):
    """The written-out inverse (inverse FFT, window, overlap-add, envelope) gives what
    `torch.istft` gives, also for a hop that does not divide the frame (768) and for a requested
    length shorter or longer than the signal."""
    spec = stft(torch.randn(2, 3, 5000), n_fft, hop) * (1 + torch.rand(2, 3, n_fft // 2 + 1, 1))
    length = 5000 + extra
    window = torch.hann_window(n_fft)
    expected = torch.istft(
        spec.reshape(6, *spec.shape[-2:]), n_fft, hop, window=window, center=True, length=length
    )
    torch.testing.assert_close(istft(spec, n_fft, hop, length), expected.reshape(2, 3, length))


def test_identity_mask_through_the_model_reconstructs_the_mixture():
    config = TFSWAConfig(
        stems=["all"],
        mixture_consistency=False,
        n_fft=2048,
        hop_length=512,
        dims=[8],
        depths=[1],
        decoder_depths=[],
        num_heads=[1],
        tf_attention_stages=[False],
    )
    model = TFSWAUNet(config).eval()  # a 1-stem model starts from the identity mask
    mixture = torch.randn(1, 2, ODD_LENGTH)
    with torch.no_grad():
        out = model(mixture)
    assert (out.masks - 1).abs().max() == 0
    assert (out.waveforms[:, 0] - mixture).abs().max() < 1e-5


def test_stft_runs_in_float32_under_autocast():
    model = TFSWAUNet(make_tiny_config()).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(1, 2, 3000), labels=torch.randn(1, 2, 2, 3000))
    assert out.waveforms.dtype == torch.float32
    assert out.spectrograms.dtype == torch.complex64
    assert out.loss.dtype == torch.float32


def test_labels_give_l1_loss_and_shape_errors():
    model = TFSWAUNet(make_tiny_config()).eval()
    mixture, labels = torch.randn(1, 2, 2000), torch.randn(1, 2, 2, 2000)
    out = model(mixture, labels=labels)
    torch.testing.assert_close(out.loss, (out.waveforms - labels).abs().mean())
    with pytest.raises(ValueError, match="labels must have shape"):
        model(mixture, labels=labels[:, :1])
    assert isinstance(model(mixture, return_dict=False), tuple)


def test_the_labels_loss_is_the_training_loss_with_default_weights():
    from modeling_tfswa.training.config import LossConfig
    from modeling_tfswa.training.losses import SeparationLoss

    config = make_tiny_config()
    model = randomize(TFSWAUNet(config)).eval()
    mixture, labels = torch.randn(2, 2, 2000), torch.randn(2, 2, 2, 2000)
    out = model(mixture, labels=labels)
    loss = SeparationLoss(LossConfig(), config.stems, config.n_fft, config.hop_length)
    torch.testing.assert_close(out.loss, loss(out.waveforms, labels)["total"])


def test_unknown_forward_arguments_are_refused():
    model = TFSWAUNet(make_tiny_config()).eval()
    mixture = torch.randn(1, 2, 2000)
    with pytest.raises(TypeError, match="unexpected keyword argument 'mixture'"):
        model(input_values=mixture, mixture=mixture)
    with pytest.raises(TypeError, match="unexpected keyword argument 'attention_mask'"):
        model(mixture, attention_mask=torch.ones(1, 2000))
    # What transformers utilities pass is accepted; outputs the model lacks are not faked.
    out = model(mixture, return_dict=True, output_attentions=False, output_hidden_states=None)
    assert out.waveforms.shape == (1, 2, 2, 2000)
    with pytest.raises(ValueError, match="output_hidden_states=True"):
        model(mixture, output_hidden_states=True)


# --- window helpers -----------------------------------------------------------------------------
def test_window_partition_roundtrip_on_padded_grid():
    grid = torch.randn(2, 13, 10, 3)  # not a multiple of the window
    padded = pad_grid(grid, (4, 4))
    assert padded.shape == (2, 16, 12, 3)
    windows = window_partition(padded, (4, 4))
    assert windows.shape == (2, 12, 16, 3)
    torch.testing.assert_close(window_reverse(windows, (4, 4), (16, 12))[:, :13, :10], grid)


def test_shift_and_padding_mask():
    mask = window_attention_mask((8, 8), (7, 8), (4, 4), (2, 2), torch.device("cpu"))
    assert mask.shape == (4, 16, 16) and mask.dtype == torch.bool
    assert not mask.diagonal(dim1=1, dim2=2).any()  # every token sees itself
    assert not mask[0].any()  # the first window holds one region and no padding
    assert mask[3].any()  # the last window mixes shifted regions and padding
    unmasked = window_attention_mask((8, 8), (8, 8), (4, 4), (0, 0), torch.device("cpu"))
    assert unmasked.shape == (4, 16, 16) and not unmasked.any()


def test_padding_is_invisible_to_valid_tokens():
    """A window that is mostly padding: its valid tokens attend to each other only."""
    torch.manual_seed(0)
    model = randomize(TFSWAUNet(make_tiny_config()))
    window_attention = model.mask_estimator.encoder[0].blocks[0].window_attention.eval()
    assert window_attention.shift == (0, 0)
    grid = torch.randn(1, 9, 7, 8)  # 9 x 7 is not a multiple of the 4 x 4 window
    with torch.no_grad():
        out = window_attention(grid)
        # The window at rows 8..11, columns 4..7 holds 3 valid tokens: (8, 4), (8, 5), (8, 6).
        tokens = grid[0, 8, 4:7]  # (3, dim)
        attention = window_attention.attention
        heads, dim = attention.num_heads, tokens.shape[-1]
        q, k, v = attention.qkv(tokens).view(3, 3, heads, dim // heads).permute(1, 2, 0, 3)
        table = window_attention.relative_position_bias_table
        index = window_attention.relative_position_index[:3, :3]  # positions (0, 0..2) in window
        bias = table[index.reshape(-1)].view(3, 3, heads).permute(2, 0, 1)
        weights = (q @ k.transpose(-1, -2) / (dim // heads) ** 0.5 + bias).softmax(-1)
        expected = attention.proj((weights @ v).transpose(0, 1).reshape(3, dim))
    assert out.shape == grid.shape
    torch.testing.assert_close(out[0, 8, 4:7], expected, atol=1e-5, rtol=1e-5)


def naive_window_attention(module, grid):
    """Reference for (shifted) window attention, token by token: in original coordinates the
    shifted windows start at `shift`, so tokens p and q attend to each other iff
    floor((p - shift) / window) agrees on both axes (Swin's cyclic shift + mask is equivalent)."""
    _, t, f, dim = grid.shape
    attention, heads = module.attention, module.attention.num_heads
    (wt, wf), (st, sf) = module.window, module.shift
    q, k, v = attention.qkv(grid[0]).view(t, f, 3, heads, dim // heads).unbind(2)
    out = torch.zeros(t, f, dim)
    for ti in range(t):
        for fi in range(f):
            keys = [
                (tj, fj)
                for tj in range(t)
                for fj in range(f)
                if (tj - st) // wt == (ti - st) // wt and (fj - sf) // wf == (fi - sf) // wf
            ]
            kk = torch.stack([k[tj, fj] for tj, fj in keys], 1)  # (heads, n, d)
            vv = torch.stack([v[tj, fj] for tj, fj in keys], 1)
            rows = [(ti - tj + wt - 1) * (2 * wf - 1) + (fi - fj + wf - 1) for tj, fj in keys]
            bias = module.relative_position_bias_table[rows].T  # (heads, n)
            logits = (kk @ q[ti, fi].unsqueeze(-1)).squeeze(-1) / (dim // heads) ** 0.5 + bias
            mixed = (logits.softmax(-1).unsqueeze(-1) * vv).sum(1)  # (heads, d)
            out[ti, fi] = attention.proj(mixed.reshape(dim))
    return out


@pytest.mark.parametrize("grad", [False, True])  # torch's SDPA; the explicit training path
@pytest.mark.parametrize("block_index", [0, 1])  # unshifted, shifted
def test_window_attention_matches_naive_reference_on_odd_grid(block_index, grad):
    torch.manual_seed(0)
    model = randomize(TFSWAUNet(make_tiny_config())).eval()
    module = model.mask_estimator.encoder[0].blocks[block_index].window_attention
    assert module.shift == ((2, 2) if block_index else (0, 0))
    grid = torch.randn(1, 9, 7, 8)  # not a multiple of the 4 x 4 window
    with torch.set_grad_enabled(grad):
        out = module(grid)[0]
    with torch.no_grad():
        torch.testing.assert_close(out, naive_window_attention(module, grid), atol=1e-5, rtol=1e-5)


def test_explicit_attention_matches_sdpa_values_and_gradients():
    """The CPU training path of the biased attention is SDPA's maths: same output, same
    gradients for queries, keys, values and the bias (with fully masked pairs)."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 6, 16, 4, dtype=torch.float64) for _ in range(3))
    bias = torch.randn(1, 6, 16, 16, dtype=torch.float64)
    bias[:, :, :3, 8:] = -1e4
    results = []
    for attend in (
        lambda *x: F.scaled_dot_product_attention(*x[:3], attn_mask=x[3]),
        lambda *x: TFSWAAttention.explicit_attention(*x, dropout=0.0),
    ):
        inputs = [x.clone().requires_grad_() for x in (q, k, v, bias)]
        out = attend(*inputs)
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out))
        results.append([out, *(x.grad for x in inputs)])
    for sdpa, explicit in zip(*results):
        torch.testing.assert_close(explicit, sdpa)


# --- gradient checkpointing ---------------------------------------------------------------------
def test_gradients_equal_with_and_without_checkpointing():
    torch.manual_seed(0)
    model = randomize(TFSWAUNet(make_tiny_config(drop_path_rate=0.0)))
    mixture, labels = torch.randn(2, 2, 3000), torch.randn(2, 2, 2, 3000)

    def grads():
        model.zero_grad()
        model(mixture, labels=labels).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    reference = grads()
    model.gradient_checkpointing_enable()
    blocks = [m for m in model.modules() if m.__class__.__name__ == "TFSWABlock"]
    assert blocks and all(b.gradient_checkpointing for b in blocks)
    checkpointed = grads()
    assert any(g.abs().sum() > 0 for g in reference.values())
    for name, grad in reference.items():
        torch.testing.assert_close(checkpointed[name], grad, msg=name)


# --- the feed-forward ----------------------------------------------------------------------------
@pytest.mark.parametrize("kernel", [0, 3, 5])
def test_the_feed_forward_sees_its_convolution_neighbourhood_only(kernel):
    """A change at one token moves the feed-forward's output at that token alone (token-wise), or
    at the `kernel x kernel` tokens around it (depthwise convolution), clipped at the grid's edge."""
    torch.manual_seed(0)
    model = randomize(TFSWAUNet(make_tiny_config(mlp_conv_kernel_size=kernel))).eval()
    mlp = model.mask_estimator.encoder[0].blocks[0].mlp
    assert (mlp.conv is None) == (kernel == 0)
    grid = torch.randn(1, 9, 7, 8)
    changed = grid.clone()
    changed[0, 4, 0] += 1.0  # a token on the lowest frequency row
    with torch.no_grad():
        moved = (mlp(changed) - mlp(grid)).abs().amax(-1)[0] > 0
    reach = kernel // 2
    expected = torch.zeros(9, 7, dtype=torch.bool)
    expected[4 - reach : 4 + reach + 1, : reach + 1] = True
    assert torch.equal(moved, expected)


# --- saving and loading -------------------------------------------------------------------------
@pytest.mark.parametrize("layout", [{}, {"mlp_conv_kernel_size": 3}])
def test_save_and_load_registered_gives_identical_outputs(tmp_path, layout):
    model = randomize(TFSWAUNet(make_tiny_config(**layout))).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    for code in ("modeling_tfswa.py", "configuration_tfswa.py", "spectral.py"):
        assert (tmp_path / code).exists(), code
    assert isinstance(AutoConfig.from_pretrained(tmp_path), TFSWAConfig)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, TFSWAUNet)
    assert torch.equal(loaded.spectral.window, model.spectral.window)
    mixture = torch.randn(1, 2, 5000)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(mixture).waveforms, model(mixture).waveforms, atol=0, rtol=0
        )


def test_trust_remote_code_loads_in_a_fresh_process(tmp_path):
    model = randomize(TFSWAUNet(make_tiny_config(["vocals", "drums", "rest"]))).eval()
    model.save_pretrained(tmp_path / "model")
    mixture = torch.randn(1, 2, 5000)
    torch.save(mixture, tmp_path / "mixture.pt")
    with torch.no_grad():
        torch.save(model(mixture).waveforms, tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import sys, torch
        from transformers import AutoModel
        torch.set_num_threads({torch.get_num_threads()})  # the parent's reduction order
        model = AutoModel.from_pretrained({str(tmp_path / "model")!r}, trust_remote_code=True).eval()
        assert "modeling_tfswa" not in sys.modules, "the installed package must not be imported"
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        with torch.no_grad():
            out = model(torch.load({str(tmp_path / "mixture.pt")!r})).waveforms
        expected = torch.load({str(tmp_path / "expected.pt")!r})
        assert torch.equal(out, expected), (out - expected).abs().max()
        print("ok", model.config.stems)
        """
    )
    # Run from tmp_path so that the checkout's modeling_tfswa/ cannot shadow anything.
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ok ['vocals', 'drums', 'rest']" in result.stdout


def test_folders_saved_before_the_frequency_bands_load_their_weights(tmp_path):
    from safetensors.torch import load_file, save_file

    model = randomize(TFSWAUNet(make_tiny_config(["a", "b", "c"]))).eval()
    model.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    old_names = {
        k.replace("projections.0.", "projection.").replace("heads.0.", "head."): v
        for k, v in load_file(weights).items()
    }
    assert "mask_estimator.head.weight" in old_names
    save_file(old_names, weights, metadata={"format": "pt"})
    loaded = TFSWAUNet.from_pretrained(tmp_path).eval()
    mixture = torch.randn(1, 2, 3000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(mixture).waveforms, model(mixture).waveforms)
