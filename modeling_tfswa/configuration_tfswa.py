"""Configuration of TFSWA-UNet. Imports nothing of this project, so a saved model folder stands alone."""

from __future__ import annotations

import inspect
import re

from transformers import PretrainedConfig

_MASK_TYPES = ("complex", "ratio")
#: The `frequency_bands` argument's default: the four-band layout of [`default_frequency_bands`].
DEFAULT_BANDS = "default"
#: Characters a stem name (a file name of the separated stems) must not hold.
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


def default_frequency_bands(n_fft: int) -> list[list[int]] | None:
    """The default frequency bands for an STFT of `n_fft`: 2-bin patches up to bin `n_fft // 64`,
    4-bin up to `n_fft // 16`, 8-bin up to `n_fft // 4`, 16-bin above (at `n_fft=2048`, 44.1 kHz:
    690 Hz, 2.8 kHz, 11 kHz; 121 tokens per frame). `None` (uniform patches) below `n_fft=64`,
    where the first band would hold no bin."""
    if n_fft < 64:
        return None
    return [[n_fft // 64, 2], [n_fft // 16, 4], [n_fft // 4, 8], [n_fft // 2 + 1, 16]]


class TFSWAConfig(PretrainedConfig):
    r"""Configuration of a [`TFSWAUNet`] music source separator: the single source of truth for the model.

    The model turns a waveform mixture into one waveform per stem by estimating a mask per stem and
    audio channel on the mixture's STFT with a U-Net of time-frequency shifted-window attention blocks.

    Args:
        stems (`list[str]`, *optional*, defaults to `["vocals", "drums", "bass", "other"]`):
            Ordered names of the separated sources; the model has one output per name. Any non-empty
            list of unique plain names (they name the stems' files: at most 64 characters, no path
            separator or control character, not `.` or `..`; e.g. `["vocals", "accompaniment"]`).
        audio_channels (`int`, *optional*, defaults to 2):
            Channels of the input mixture and of every separated stem (2 for stereo).
        sample_rate (`int`, *optional*, defaults to 44100):
            Sample rate in Hz the model was trained at; inputs at other rates are resampled by the
            separation API, not by the model.
        n_fft (`int`, *optional*, defaults to 2048):
            STFT size; the spectrogram has `n_fft // 2 + 1` frequency bins.
        hop_length (`int`, *optional*, defaults to `n_fft // 2`):
            STFT hop in samples; must be in `[1, n_fft // 2]` so that the inverse STFT is exact.
            Without a value, `n_fft // 2` (frames overlapping by half: 1024 at the default
            `n_fft`), stored as that number; since 2026-12-06, 512 before (README "Quality").
        patch_size (`list[int]`, *optional*, defaults to `[1, 8]`):
            Time × frequency size of the patches embedded as one token, so that attention can run on
            a grid coarser than the STFT grid (at the defaults: one frame per token, 44 × 121 tokens
            per second of audio, the frequency patches given by `frequency_bands`; `[2, 8]` at hop
            512, the default before 2026-12-06, gives the same grid). The final projection still
            predicts one mask value per STFT bin.
        frequency_bands (`list[list[int]]` or `None`, *optional*, defaults to `"default"`):
            Patches of different widths in frequency: `[[stop, width], ...]`, stops increasing, the
            last at least `n_fft // 2 + 1`: the bins from the previous band's stop (0 for the first)
            up to `stop` are cut into patches `width` bins wide (the band's last patch zero-padded),
            each band with its own patch embedding and mask projection. Finer patches where the low
            notes sit, as the RoFormers' band split does (not in the TFSWA papers). `"default"`:
            the four bands of [`default_frequency_bands`] for this `n_fft` (at 2048: `[[32, 2],
            [128, 4], [512, 8], [1025, 16]]`, 121 tokens per frame instead of 129 with 8-bin
            patches), stored as that list. `None`: patches of `patch_size[1]` bins everywhere
            (with bands, `patch_size[1]` is not used; the default before 2026-12).
        dims (`list[int]`, *optional*, defaults to `[16, 32, 64, 128, 256]`):
            Token width of each U-Net stage; stage `i + 1` works on a grid halved in time and frequency.
            Narrow where the tokens are many and wide where they are few: most of the parameters
            sit in the last stage, which sees 1/256 of the first stage's tokens, so a training
            step costs about a third of the four-stage default's before 2026-12-06 (`[32, 64, 128,
            256]`, depths `[2, 2, 6, 2]`; README "Quality").
        depths (`list[int]`, *optional*, defaults to `[1, 1, 1, 1, 3]`):
            Number of TFSWA blocks in each encoder stage (the last stage is the bottleneck).
        decoder_depths (`list[int]`, *optional*, defaults to `[1, 1, 1, 1]`):
            Number of TFSWA blocks in each decoder stage, from the finest (stage 0) to the coarsest
            below the bottleneck; one entry per stage but the last.
        num_heads (`list[int]`, *optional*, defaults to `[1, 2, 4, 8, 8]`):
            Attention heads of each stage; `dims[i]` must be divisible by `num_heads[i]`.
        window_size (`list[int]`, *optional*, defaults to `[8, 8]`):
            Time × frequency size of the attention windows of the shifted-window attention. Every other
            block shifts the windows by half a window.
        tf_attention_stages (`list[bool]`, *optional*, defaults to `[False, True, True, True, True]`):
            Per stage, whether its blocks add temporal attention (each frequency row attends along
            the whole time axis) and frequency attention (each frame attends along the whole
            frequency axis) to the windowed attention. They are cheap on the coarse grids of the deep
            stages and quadratic in the grid size on the fine ones; the decoder stage `i` follows
            encoder stage `i`. Without a value: every stage but the first (before 2026-12-06, the
            deeper half of the stages: `[False, False, True, True]` for the four-stage default
            then; saved configs hold their list).
        mlp_ratio (`float`, *optional*, defaults to 4.0):
            Width of the feed-forward layers relative to the token width.
        mlp_conv_kernel_size (`int`, *optional*, defaults to 3):
            With an odd size `k > 0`, a convolutional feed-forward: a depthwise `k × k` (time ×
            frequency) convolution over the token grid, added as a residual to the first
            projection's output before the activation (each hidden channel sees its `k × k`
            neighbourhood of tokens; `k * k + 1` weights per hidden channel). The same weights
            at every frequency, as the attention's. 0: the plain token-wise feed-forward of the
            TFSWA papers. Not in the TFSWA papers; after the depthwise convolutions in the
            feed-forward of Uformer's LeFF and SegFormer's Mix-FFN (README "Architecture").
            Added on 2026-12-05 and the default since 2026-12-06 (README "Quality"); a saved
            config without the key (older than the option) loads with 0, as it was trained.
        qkv_bias (`bool`, *optional*, defaults to `True`):
            Whether the query/key/value projections have a bias.
        hidden_dropout_prob (`float`, *optional*, defaults to 0.0):
            Dropout after attention and feed-forward projections.
        attention_probs_dropout_prob (`float`, *optional*, defaults to 0.0):
            Dropout on attention probabilities (training only).
        drop_path_rate (`float`, *optional*, defaults to 0.0):
            Stochastic depth rate, increasing linearly over the encoder blocks (0.1 before 2026-12:
            at CPU budgets of minutes it cost quality, README "Quality").
        mask_type (`str`, *optional*, defaults to `"complex"`):
            `"complex"`: an unbounded complex mask per stem and channel, multiplied with the complex
            mixture STFT. `"ratio"`: a real mask in [0, 1] (sigmoid) scaling the mixture STFT.
        mixture_consistency (`bool`, *optional*, defaults to `True`):
            Project the stems' STFTs so that they sum to the mixture's (Wisdom et al., 2019,
            "Differentiable consistency constraints for improved deep speech enhancement"): each
            stem gets an equal share of the residual `mixture - sum(stems)` (for complex masks,
            folded into the mask head, whose masks then sum to one over stems). Only meaningful when
            the stems partition the mixture (4 MUSDB stems, or vocals and accompaniment): set it
            to `False` for stems that leave part of the mixture out; a single stem with it is
            refused (its output would be the mixture). Not in the TFSWA papers; `False` before
            2026-12.
        layer_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the layer norms.
        spectrogram_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the per-frequency-bin instance normalisation of the input spectrogram.
        log_power_input (`bool`, *optional*, defaults to `True`):
            Also give the network each channel's log power spectrogram, `log(|X|^2 + floor)` with
            the floor 60 dB below the example's mean power, centred per frequency bin over channels
            and frames and divided by one standard deviation per example: `audio_channels` more
            input features per bin. A patch embedding is linear in the real and imaginary parts,
            so it cannot form a bin's energy, the onsets of drums or the sustain of a bass note;
            this gives them directly. Centred per bin, a fixed equalisation of the mixture (a
            recording's or a mix's colour) cancels, as it does in the per-bin normalisation of the
            real and imaginary parts. Not in the TFSWA papers; added and made the default on
            2026-12-05 (README "Quality"); a saved config without the key (older than the option)
            loads with `False`, as it was trained.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the truncated normal initialisation of linear layers.
        segment_seconds (`float`, *optional*, defaults to 6.0):
            Length in seconds of the segments a full track is cut into for separation (the
            overlap-add reads it as its default). The trainer writes the length the model was
            trained on (`data.segment_seconds`), so that the model sees contexts as long as those.
        overlap (`float`, *optional*, defaults to 0.25):
            Fraction of a separation segment shared with the next one, in `[0, 1)`.

    Example:

    ```python
    >>> from modeling_tfswa import TFSWAConfig, TFSWAUNet
    >>> config = TFSWAConfig(stems=["vocals", "accompaniment"])
    >>> model = TFSWAUNet(config)
    >>> config.num_stems, config.num_mask_channels
    (2, 8)
    ```
    """

    model_type = "tfswa"

    def __init__(
        self,
        stems: list[str] | None = None,
        audio_channels: int = 2,
        sample_rate: int = 44100,
        n_fft: int = 2048,
        hop_length: int | None = None,
        patch_size: list[int] | None = None,
        dims: list[int] | None = None,
        depths: list[int] | None = None,
        decoder_depths: list[int] | None = None,
        num_heads: list[int] | None = None,
        window_size: list[int] | None = None,
        tf_attention_stages: list[bool] | None = None,
        mlp_ratio: float = 4.0,
        mlp_conv_kernel_size: int = 3,
        qkv_bias: bool = True,
        hidden_dropout_prob: float = 0.0,
        attention_probs_dropout_prob: float = 0.0,
        drop_path_rate: float = 0.0,
        mask_type: str = "complex",
        mixture_consistency: bool = True,
        layer_norm_eps: float = 1e-5,
        spectrogram_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        segment_seconds: float = 6.0,
        overlap: float = 0.25,
        frequency_bands: list[list[int]] | str | None = DEFAULT_BANDS,
        log_power_input: bool = True,
        **kwargs,
    ):
        if stems is None:
            stems = ["vocals", "drums", "bass", "other"]
        self.stems = list(stems) if isinstance(stems, (list, tuple)) else stems
        self.audio_channels = audio_channels
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        if hop_length is None and isinstance(n_fft, int):
            hop_length = n_fft // 2
        self.hop_length = hop_length
        self.patch_size = list(patch_size) if patch_size is not None else [1, 8]
        if frequency_bands == DEFAULT_BANDS and isinstance(n_fft, int):  # else n_fft fails below
            frequency_bands = default_frequency_bands(n_fft)
        self.frequency_bands = (
            [list(band) for band in frequency_bands]
            if isinstance(frequency_bands, (list, tuple))
            else frequency_bands
        )
        self.dims = list(dims) if dims is not None else [16, 32, 64, 128, 256]
        self.depths = list(depths) if depths is not None else [1, 1, 1, 1, 3]
        self.decoder_depths = (
            list(decoder_depths) if decoder_depths is not None else [1] * (len(self.depths) - 1)
        )
        self.num_heads = list(num_heads) if num_heads is not None else [1, 2, 4, 8, 8]
        self.window_size = list(window_size) if window_size is not None else [8, 8]
        self.tf_attention_stages = (
            list(tf_attention_stages)
            if tf_attention_stages is not None
            else [i > 0 for i in range(len(self.depths))]
        )
        self.mlp_ratio = mlp_ratio
        self.mlp_conv_kernel_size = mlp_conv_kernel_size
        self.qkv_bias = qkv_bias
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.drop_path_rate = drop_path_rate
        self.mask_type = mask_type
        self.mixture_consistency = mixture_consistency
        self.layer_norm_eps = layer_norm_eps
        self.spectrogram_norm_eps = spectrogram_norm_eps
        self.initializer_range = initializer_range
        self.segment_seconds = segment_seconds
        self.overlap = overlap
        self.log_power_input = log_power_input
        # The waveform refiner (a waveform U-Net after the inverse STFT) was removed on 2026-12-04
        # after seven runs without a robust gain: a folder saved with one would load without its
        # weights, so it is refused instead (a saved `null` is fine).
        if kwargs.pop("waveform_refiner_channels", None) is not None:
            raise ValueError(
                "TFSWAConfig.waveform_refiner_channels: the waveform refiner was removed from "
                "TFSWA-UNet; a model saved with one cannot be loaded"
            )
        self._validate()
        super().__init__(**kwargs)

    #: Values for keys that a saved config may lack because it is older than the key, where the
    #: default has changed since: the value the saved model was trained with.
    _VALUES_BEFORE_THE_KEY = {"log_power_input": False, "mlp_conv_kernel_size": 0}

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        """`PretrainedConfig.from_dict` (what `from_pretrained` reads a saved config with), giving
        keys a saved config predates their `_VALUES_BEFORE_THE_KEY`, not today's default."""
        return super().from_dict({**cls._VALUES_BEFORE_THE_KEY, **config_dict}, **kwargs)

    @classmethod
    def argument_names(cls) -> frozenset[str]:
        """Names of this config's own arguments (not transformers' generic ones)."""
        return frozenset(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}

    # Derived values are properties so that they are never saved and can never disagree.
    @property
    def num_stems(self) -> int:
        return len(self.stems)

    @property
    def num_freq_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def num_stages(self) -> int:
        return len(self.dims)

    @property
    def frequency_patches(self) -> list[tuple[int, int, int]]:
        """`(start, stop, width)` of each frequency band, stops clipped to the bins: one band of
        `patch_size[1]`-bin patches without `frequency_bands`."""
        if self.frequency_bands is None:
            return [(0, self.num_freq_bins, self.patch_size[1])]
        starts = [0] + [stop for stop, _ in self.frequency_bands[:-1]]
        return [
            (start, min(stop, self.num_freq_bins), width)
            for start, (stop, width) in zip(starts, self.frequency_bands)
        ]

    @property
    def num_input_features(self) -> int:
        """Input features per STFT bin and frame: real and imaginary part of each audio channel,
        plus its log power with `log_power_input`."""
        return (3 if self.log_power_input else 2) * self.audio_channels

    @property
    def num_mask_channels(self) -> int:
        """Output channels of the mask estimator: stems × audio channels × (2 if complex else 1)."""
        per_channel = 2 if self.mask_type == "complex" else 1
        return self.num_stems * self.audio_channels * per_channel

    def _validate(self) -> None:
        def fail(field: str, problem: str):
            raise ValueError(f"TFSWAConfig.{field}: {problem}")

        def positive_ints(field: str, value, length: int | None = None):
            if not isinstance(value, list) or not value:
                fail(field, f"must be a non-empty list, got {value!r}")
            if length is not None and len(value) != length:
                fail(field, f"must have {length} entries, got {len(value)} ({value!r})")
            if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
                fail(field, f"entries must be positive integers, got {value!r}")

        if not isinstance(self.stems, list) or not self.stems:
            fail("stems", "must be a non-empty list of stem names")
        if not all(isinstance(s, str) and s for s in self.stems):
            fail("stems", f"names must be non-empty strings, got {self.stems!r}")
        for stem in self.stems:  # stem names become file names: a model must not write elsewhere
            if stem in (".", "..") or len(stem) > 64 or _UNSAFE_NAME.search(stem):
                fail(
                    "stems",
                    f"{stem[:70]!r} is not a plain file name (at most 64 characters, no path "
                    "separator or control character, not '.' or '..')",
                )
        duplicates = sorted({s for s in self.stems if self.stems.count(s) > 1})
        if duplicates:
            fail("stems", f"names must be unique, {duplicates} appear more than once")
        for field in ("audio_channels", "sample_rate", "n_fft", "hop_length"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                fail(field, f"must be a positive integer, got {value!r}")
        if self.n_fft < 4:
            fail("n_fft", f"must be at least 4, got {self.n_fft}")
        if self.hop_length > self.n_fft // 2:
            # Hann windows overlap-add to a non-zero envelope (exact inverse STFT) only up to n_fft/2.
            fail(
                "hop_length", f"({self.hop_length}) must not exceed n_fft // 2 ({self.n_fft // 2})"
            )
        positive_ints("patch_size", self.patch_size, 2)
        positive_ints("window_size", self.window_size, 2)
        if self.frequency_bands is not None:
            bands = self.frequency_bands
            if not bands or not all(isinstance(b, list) and len(b) == 2 for b in bands):
                fail("frequency_bands", f"must be a non-empty list of [stop, width], got {bands!r}")
            positive_ints("frequency_bands", [v for band in bands for v in band])
            stops = [stop for stop, _ in bands]
            if stops != sorted(set(stops)) or stops[-1] < self.num_freq_bins:
                fail(
                    "frequency_bands",
                    f"stops must increase and the last reach n_fft // 2 + 1 = {self.num_freq_bins}"
                    f" (every bin in a band, none left past it), got {stops}",
                )
            if len(stops) > 1 and stops[-2] >= self.num_freq_bins:
                fail("frequency_bands", f"only the last stop may reach {self.num_freq_bins}")
        positive_ints("dims", self.dims)
        stages = len(self.dims)
        positive_ints("depths", self.depths, stages)
        positive_ints("num_heads", self.num_heads, stages)
        if stages > 1:
            positive_ints("decoder_depths", self.decoder_depths, stages - 1)
        elif self.decoder_depths:
            fail("decoder_depths", "must be empty for a single-stage model")
        for i, (dim, heads) in enumerate(zip(self.dims, self.num_heads)):
            if dim % heads:
                fail("num_heads", f"dims[{i}]={dim} is not divisible by num_heads[{i}]={heads}")
        if (
            not isinstance(self.tf_attention_stages, list)
            or len(self.tf_attention_stages) != stages
        ):
            fail("tf_attention_stages", f"must be a list of {stages} booleans")
        if not all(isinstance(v, bool) for v in self.tf_attention_stages):
            fail(
                "tf_attention_stages", f"entries must be booleans, got {self.tf_attention_stages!r}"
            )
        if not isinstance(self.mlp_ratio, (int, float)) or self.mlp_ratio <= 0:
            fail("mlp_ratio", f"must be positive, got {self.mlp_ratio!r}")
        k = self.mlp_conv_kernel_size
        if isinstance(k, bool) or not isinstance(k, int) or k < 0 or (k and k % 2 == 0):
            fail("mlp_conv_kernel_size", f"must be 0 (off) or an odd positive size, got {k!r}")
        for field in ("hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate"):
            value = getattr(self, field)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                fail(field, f"must be in [0, 1), got {value!r}")
        if self.mask_type not in _MASK_TYPES:
            fail("mask_type", f"must be one of {_MASK_TYPES}, got {self.mask_type!r}")
        if not isinstance(self.log_power_input, bool):
            fail("log_power_input", f"must be true or false, got {self.log_power_input!r}")
        if not isinstance(self.mixture_consistency, bool):
            fail("mixture_consistency", f"must be true or false, got {self.mixture_consistency!r}")
        if self.mixture_consistency and len(self.stems) == 1:
            fail(
                "mixture_consistency",
                f"a single stem {self.stems} would be the mixture itself; set it to false",
            )
        if not isinstance(self.overlap, (int, float)) or not 0.0 <= self.overlap < 1.0:
            fail("overlap", f"must be in [0, 1), got {self.overlap!r}")
        for field in (
            "layer_norm_eps",
            "spectrogram_norm_eps",
            "initializer_range",
            "segment_seconds",
        ):
            value = getattr(self, field)
            if not isinstance(value, (int, float)) or value <= 0:
                fail(field, f"must be positive, got {value!r}")


__all__ = ["DEFAULT_BANDS", "TFSWAConfig", "default_frequency_bands"]
