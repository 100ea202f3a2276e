"""Rendering MIDI through SoundFonts into MUSDB18-HQ-layout stems (data_scripts.render, composer)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pretty_midi = pytest.importorskip("pretty_midi")
pytest.importorskip("fluidsynth")
pytest.importorskip("pedalboard")

from data_scripts import render  # noqa: E402
from data_scripts.cli import main as data_cli  # noqa: E402
from data_scripts.composer import GENRES, compose_song  # noqa: E402
from data_scripts.render import (  # noqa: E402
    RenderError,
    RenderSpec,
    ensure_rendered_dataset,
    resolve_mapping,
)

SMALL_FONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
if not SMALL_FONT.is_file():
    pytest.skip("needs the timgm6mb-soundfont Debian package", allow_module_level=True)

STEMS = ("drums", "bass", "other", "vocals")


def _midi(path: Path, parts=("drums", "bass", "piano", "vocals"), seconds: float = 2.0) -> Path:
    """A tiny song: drums on the drum channel, a bass, a piano and a line named vocals."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    programs = {"drums": 0, "bass": 33, "piano": 0, "vocals": 53, "guitar": 25}
    for part in parts:
        inst = pretty_midi.Instrument(programs[part], is_drum=part == "drums", name=part)
        for k, t in enumerate(np.arange(0, seconds - 0.3, 0.25)):
            pitch = {"drums": 36 + 2 * (k % 2), "bass": 40, "vocals": 67 + k % 3}.get(part, 60)
            inst.notes.append(pretty_midi.Note(100, pitch, float(t), float(t) + 0.2))
        pm.instruments.append(inst)
    pm.write(str(path))
    return path


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def _read(track: Path) -> dict[str, np.ndarray]:
    return {
        name: sf.read(track / f"{name}.wav", dtype="float32")[0] for name in (*STEMS, "mixture")
    }


def _spec(tmp_path: Path, **kwargs) -> RenderSpec:
    defaults = dict(seconds=2.0, soundfonts=(str(SMALL_FONT),), midi_dir=None)
    return RenderSpec(**{**defaults, **kwargs})


def test_stems_sum_to_mixture_and_parts_land_in_their_stems(tmp_path):
    midi = tmp_path / "midi"
    midi.mkdir()
    _midi(midi / "song.mid")
    root = ensure_rendered_dataset(
        tmp_path / "out", _spec(tmp_path, midi_dir=str(midi), validation_fraction=0.0,
                                test_fraction=0.0), workers=1, progress=False,
    )  # fmt: skip
    track = root / "train" / "song"
    song = _read(track)
    total = song["drums"] + song["bass"] + song["other"] + song["vocals"]
    np.testing.assert_array_equal(song["mixture"], total)  # exact float32 sum
    assert song["mixture"].shape == (88200, 2)
    assert np.abs(song["mixture"]).max() <= 0.95 + 1e-6
    for stem in STEMS:
        assert _rms(song[stem]) > 1e-3, stem  # every part sounds in its stem
    manifest = json.loads((track / "manifest.json").read_text())
    assert manifest["stems"]["drums"]["instruments"] == ["drums (drums, program 0)"]
    assert "piano" in manifest["stems"]["other"]["instruments"][0]
    assert "vocals" in manifest["stems"]["vocals"]["instruments"][0]
    assert json.loads((root / "render_manifest.json").read_text())["tracks"] == ["train/song"]


def test_drum_channel_lands_in_drums_and_missing_parts_are_silent(tmp_path):
    rng = np.random.default_rng(0)
    pm = pretty_midi.PrettyMIDI(str(_midi(tmp_path / "d.mid", parts=("drums",))))
    song, info = render.render_song(
        pm, SMALL_FONT, resolve_mapping(), 2.0, rng, vocal_engine="soundfont"
    )
    assert _rms(song["drums"]) > 1e-2
    for stem in ("bass", "other", "vocals"):
        assert _rms(song[stem]) < 1e-3  # the recording noise floor only
        assert info["stems"][stem]["silent"]


def test_a_drum_kit_missing_from_the_soundfont_is_named_in_the_manifest(tmp_path):
    pm = pretty_midi.PrettyMIDI(str(_midi(tmp_path / "k.mid", parts=("drums",))))
    pm.instruments[0].program = 127  # no kit 127 in TimGM6mb: FluidSynth plays kit 0
    song, info = render.render_song(
        pm, SMALL_FONT, resolve_mapping(), 2.0, np.random.default_rng(0)
    )
    assert _rms(song["drums"]) > 1e-2
    assert info["stems"]["drums"]["instruments"] == [
        "drums (drums, program 127, missing from TimGM6mb.sf2: played as program 0)"
    ]


KIT_FONT = Path("/usr/share/sounds/sf2/Black_Pearl_4_LV2.sf2")
needs_kit = pytest.mark.skipif(
    not KIT_FONT.is_file(), reason="needs the avldrums.lv2-soundfont Debian package"
)


@needs_kit
def test_a_drum_kit_soundfont_plays_the_drums_and_only_them(tmp_path):
    pm = pretty_midi.PrettyMIDI(str(_midi(tmp_path / "k.mid", parts=("drums", "bass"))))
    # The AVL kit is preset 0:0 of a font with no drum bank 128: it must still sound.
    assert render._synth().preset(KIT_FONT, 0, drum=True) == (0, 0)
    own, _ = render.render_song(pm, SMALL_FONT, resolve_mapping(), 2.0, np.random.default_rng(0))
    kit, info = render.render_song(
        pm, SMALL_FONT, resolve_mapping(), 2.0, np.random.default_rng(0), drum_font=KIT_FONT
    )
    assert _rms(kit["drums"]) > 1e-2
    assert not np.allclose(kit["drums"], own["drums"], atol=1e-3)
    assert info["drum_soundfont"] == KIT_FONT.name
    assert info["stems"]["drums"]["instruments"] == [
        "drums (drums, program 0, the kit of Black_Pearl_4_LV2.sf2)"
    ]
    assert info["stems"]["bass"]["instruments"] == ["bass (bass, program 33)"]


@needs_kit
def test_drum_soundfonts_draw_a_kit_per_song_and_keep_old_keys(tmp_path, capsys):
    # A spec without drum fonts keeps the key it had before the field (no re-render).
    assert RenderSpec().key() == "dc0a1770f44db726"
    spec = _spec(tmp_path, num_train=6, drum_soundfonts=(str(KIT_FONT),))
    assert spec.key() != _spec(tmp_path, num_train=6).key()
    kits = set()
    for i in range(6):
        _, manifest = render.render_job(spec, "train", f"s{i}", f"composer:{i}")
        kits.add(manifest["drum_soundfont"])
    assert kits == {KIT_FONT.name, SMALL_FONT.name}  # the song's own kit stays in the draw
    code = data_cli(
        ["render", str(tmp_path / "out"), "--num-train", "1", "--num-validation", "0",
         "--num-test", "0", "--seconds", "2", "--soundfont", str(SMALL_FONT),
         "--drum-soundfont", "/nowhere/kit.sf2"]
    )  # fmt: skip
    assert code == 2  # a missing drum font is the same one-line error as a missing font
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: soundfont /nowhere/kit.sf2: no such file (pass a path to an .sf2/.sf3)"
    ]
    assert not (tmp_path / "out").exists()


def test_several_soundfonts_in_one_process_each_play_their_own():
    # Lending a font to a part's synth renumbers it: before fonts were kept by pointer, the
    # second font's id soon named the first font, then none (a segfault in has_preset).
    other_font = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
    if not other_font.is_file():
        pytest.skip("needs the fluid-soundfont-gm Debian package")
    notes, n = [(0.0, 0.4, 60, 100)], 22050
    synth = render._FluidSynth()
    small = synth.render(SMALL_FONT, notes, 0, False, n)
    other = synth.render(other_font, notes, 0, False, n)
    assert not np.allclose(small, other)
    np.testing.assert_array_equal(synth.render(SMALL_FONT, notes, 0, False, n), small)
    np.testing.assert_array_equal(synth.render(other_font, notes, 0, False, n), other)
    np.testing.assert_array_equal(
        render._FluidSynth().render(other_font, notes, 0, False, n), other
    )
    assert synth.has_preset(other_font, 0, False) and synth.has_preset(SMALL_FONT, 0, False)
    assert not synth.has_preset(SMALL_FONT, 127, True)


def test_mapping_is_honoured_and_checked(tmp_path):
    pm = pretty_midi.PrettyMIDI(str(_midi(tmp_path / "p.mid", parts=("piano", "guitar"))))
    mapping = resolve_mapping({"piano": "bass", "guitar": "vocals"})
    song, info = render.render_song(pm, SMALL_FONT, mapping, 2.0, np.random.default_rng(0))
    assert _rms(song["bass"]) > 1e-2 and _rms(song["vocals"]) > 1e-2
    assert info["stems"]["other"]["silent"] and _rms(song["other"]) < 1e-3
    with pytest.raises(RenderError, match="unknown program family 'kazoo'"):
        resolve_mapping({"kazoo": "other"})
    with pytest.raises(RenderError, match="'piano' -> 'keys' is not a stem"):
        render.parse_mapping("piano=keys")
    with pytest.raises(RenderError, match="leaves stem 'bass' empty for every song"):
        resolve_mapping({"bass": "other"})


def test_composed_songs_are_deterministic_per_seed(tmp_path):
    a = render.render_job(_spec(tmp_path, seed=3), "train", "x", "composer:0")
    b = render.render_job(_spec(tmp_path, seed=3), "train", "x", "composer:0")
    c = render.render_job(_spec(tmp_path, seed=4), "train", "x", "composer:0")
    for stem in (*STEMS, "mixture"):
        np.testing.assert_array_equal(a[0][stem], b[0][stem])
    assert a[1] == b[1]
    assert not np.array_equal(a[0]["mixture"], c[0]["mixture"])


def test_composer_covers_every_genre_with_vocals_and_lyrics():
    for genre in GENRES:
        pm, info = compose_song(0, "train", 1, 12.0, genre=genre)
        roles = {inst.name for inst in pm.instruments}
        assert {"drums", "bass", "chords", "vocals"} <= roles, (genre, roles)
        assert pm.lyrics and info["genre"] == genre
        assert pm.instruments[0].is_drum
    with pytest.raises(ValueError, match="unknown genre"):
        compose_song(0, "train", 0, 5.0, genre="polka")


def test_resumes_after_a_kill_and_rerenders_only_what_is_missing(tmp_path, monkeypatch):
    spec = _spec(tmp_path, num_train=3, num_validation=1, num_test=0)
    calls = []
    real = render.render_job

    def dying(*args):
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed while rendering the third song
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(render, "render_job", dying)
    with pytest.raises(KeyboardInterrupt):
        ensure_rendered_dataset(tmp_path / "out", spec, workers=1, progress=False)
    root = tmp_path / "out"
    assert not (root / "render_manifest.json").exists()  # incomplete: no dataset manifest
    done = sorted(p.parent for p in root.glob("*/*/manifest.json"))
    assert len(done) == 2
    stamps = {p: (p / "mixture.wav").stat().st_mtime_ns for p in done}
    # A half-written song folder left by the kill is hidden (a dot name) and replaced.
    (root / "train" / ".tfswa-tmp-999999999-abc123").mkdir()
    calls.clear()
    monkeypatch.setattr(render, "render_job", lambda *a: calls.append(a) or real(*a))
    ensure_rendered_dataset(root, spec, workers=1, progress=False)
    assert len(calls) == 2  # only the two missing songs
    assert not list(root.glob("*/.*"))  # no temporary folder left
    assert {p: (p / "mixture.wav").stat().st_mtime_ns for p in done} == stamps
    tracks = json.loads((root / "render_manifest.json").read_text())["tracks"]
    assert len(tracks) == 4
    calls.clear()
    ensure_rendered_dataset(root, spec, workers=1, progress=False)  # idempotent
    assert calls == []


def test_bad_midi_is_skipped_by_name_and_the_batch_goes_on(tmp_path):
    midi = tmp_path / "midi"
    midi.mkdir()
    _midi(midi / "good.mid")
    (midi / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    pretty_midi.PrettyMIDI().write(str(midi / "empty.mid"))
    lines = []
    root = ensure_rendered_dataset(
        tmp_path / "out",
        _spec(tmp_path, midi_dir=str(midi), validation_fraction=0.0, test_fraction=0.0),
        workers=1,
        progress=False,
        log=lines.append,
    )
    assert [p.name for p in (root / "train").iterdir()] == ["good"]
    assert any("corrupt.mid" in line and "not a readable MIDI file" in line for line in lines)
    assert any("empty.mid" in line and "no notes" in line for line in lines)
    skipped = json.loads((root / "render_manifest.json").read_text())["skipped"]
    assert sorted(Path(p).name for p in skipped) == ["corrupt.mid", "empty.mid"]


def test_stem_silent_in_every_song_is_reported(tmp_path):
    midi = tmp_path / "midi"
    midi.mkdir()
    _midi(midi / "drums_only.mid", parts=("drums", "piano"))
    lines = []
    ensure_rendered_dataset(
        tmp_path / "out",
        _spec(tmp_path, midi_dir=str(midi), validation_fraction=0.0, test_fraction=0.0),
        workers=1,
        progress=False,
        log=lines.append,
    )
    assert any("stem 'vocals' is silent in every rendered song" in line for line in lines)


def test_missing_soundfont_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(RenderError, match="soundfont /nowhere/font.sf2: no such file"):
        ensure_rendered_dataset(tmp_path / "o", _spec(tmp_path, soundfonts=("/nowhere/font.sf2",)))
    assert not (tmp_path / "o").exists()  # nothing written
    code = data_cli(["render", str(tmp_path / "o"), "--soundfont", "/nowhere/font.sf2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["error: soundfont /nowhere/font.sf2: no such file (pass a path to an .sf2/.sf3)"]


def test_missing_known_soundfont_names_its_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "DEFAULT_SOUNDFONT_DIRS", (str(tmp_path),))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        RenderError, match=r"sf_GMbank.sf2: no such file \(apt-get install csound-soundfont\)"
    ):
        render.find_soundfonts(["sf_GMbank.sf2"])


def test_cli_renders_in_two_processes_and_plots(tmp_path):
    png = tmp_path / "song.png"
    code = data_cli(
        ["render", str(tmp_path / "out"), "--num-train", "2", "--num-validation", "1",
         "--num-test", "0", "--seconds", "2", "--soundfont", str(SMALL_FONT), "--workers", "2",
         "--vocals", "soundfont,formant", "--plot", str(png)]
    )  # fmt: skip
    assert code == 0
    assert png.stat().st_size > 10_000
    tracks = sorted(p.parent.name for p in (tmp_path / "out").glob("*/*/manifest.json"))
    assert tracks == ["rendered-train-0000", "rendered-train-0001", "rendered-validation-0000"]
    # The same spec in one process gives the same audio (workers do not change songs).
    song, _ = render.render_job(
        _spec(tmp_path, num_train=2, num_validation=1, num_test=0,
              vocal_engines=("soundfont", "formant")), "train", "x", "composer:1",
    )  # fmt: skip
    on_disk = _read(tmp_path / "out" / "train" / "rendered-train-0001")
    np.testing.assert_array_equal(song["mixture"], on_disk["mixture"])


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_speech_vocals_sing_the_melody():
    from data_scripts.vocals import speech_voice

    notes = [(0.1, 0.6, 60, 100), (0.7, 1.2, 67, 100)]
    voice = speech_voice(notes, ["la", "love"], 44100 * 2, 44100, np.random.default_rng(0))
    assert voice.shape == (88200,)
    assert _rms(voice[4410:26460]) > 1e-2 and _rms(voice[30870:52920]) > 1e-2
    assert _rms(voice[57330:]) < 1e-3  # silent after the last note

    # The pitch follows the note: autocorrelation f0 in the middle of each note.
    def f0(a: int) -> float:
        x = voice[a : a + 4096].astype(np.float64)
        c = np.correlate(x, x, "full")[4095:]
        lo, hi = 44100 // 600, 44100 // 150
        window = c[lo:hi]
        peaks = np.flatnonzero(
            (window[1:-1] >= window[:-2]) & (window[1:-1] >= window[2:])
            & (window[1:-1] >= 0.85 * window.max())
        )  # fmt: skip
        return 44100 / (lo + 1 + int(peaks[0]))

    assert abs(12 * np.log2(f0(int(0.3 * 44100)) / 261.6)) < 0.7  # C4
    assert abs(12 * np.log2(f0(int(0.9 * 44100)) / 392.0)) < 0.7  # G4
