"""`pipeline("music-source-separation")`: from a saved folder in a process without this package."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import make_tiny_config
from transformers import pipeline

from modeling_tfswa import TFSWAUNet
from modeling_tfswa.audio import AudioError
from modeling_tfswa.separation import Separator

SR = 8000

# Run in a fresh interpreter (-I: no user site, no PYTHONPATH, cwd not on sys.path) from a folder
# outside the checkout, with this project's packages made unimportable.
ISOLATED = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("modeling_tfswa", "data_scripts"):
                raise ImportError(f"{name} must not be imported here")

    sys.meta_path.insert(0, Block())
    import numpy as np
    from transformers import pipeline

    model_dir, out = sys.argv[1], sys.argv[2]
    separator = pipeline("music-source-separation", model=model_dir, trust_remote_code=True)
    inputs = [
        model_dir + "/../song.wav",  # a mono 16-kHz file
        np.load(model_dir + "/../stereo.npy"),  # (2, samples) at the model's rate
        {"raw": np.load(model_dir + "/../stereo.npy")[0], "sampling_rate": 11025},  # 1-D
    ]
    results = separator(inputs, segment_seconds=0.25, overlap=0.5)
    arrays = {}
    summary = []
    for i, result in enumerate(results):
        summary.append([[s["label"], list(s["audio"].shape), s["sampling_rate"]] for s in result])
        arrays.update({f"{i}-{s['label']}": s["audio"] for s in result})
    np.savez(out, **arrays)
    print(json.dumps({"summary": summary, "device": str(separator.device),
                      "ours": [m for m in sys.modules if m.startswith("modeling_tfswa")]}))
    """
)


@pytest.fixture
def saved_model(tmp_path):
    torch.manual_seed(0)
    model = TFSWAUNet(make_tiny_config(sample_rate=SR, segment_seconds=0.5)).eval()
    model.save_pretrained(tmp_path / "model")
    return model, tmp_path / "model"


def test_pipeline_runs_from_the_saved_folder_without_the_package(saved_model, tmp_path):
    model, folder = saved_model
    assert {"pipeline_tfswa.py", "separation_core.py"} <= {p.name for p in folder.iterdir()}
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_pipelines"]["music-source-separation"]["pt"] == ["AutoModel"]
    rng = np.random.default_rng(0)
    song = (0.1 * rng.standard_normal(3000)).astype(np.float32)
    sf.write(tmp_path / "song.wav", song, 16000, subtype="FLOAT")
    stereo = (0.1 * rng.standard_normal((2, 5000))).astype(np.float32)
    np.save(tmp_path / "stereo.npy", stereo)
    script = tmp_path / "isolated.py"
    script.write_text(ISOLATED)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    env.pop("PYTHONPATH", None)
    run = subprocess.run(
        [sys.executable, "-I", str(script), str(folder), str(tmp_path / "out.npz")],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["ours"] == [] and report["device"] == "cpu"  # auto picks the CPU here
    stems = ["vocals", "accompaniment"]
    assert report["summary"] == [
        [[stem, [1, 3000], 16000] for stem in stems],
        [[stem, [2, 5000], SR] for stem in stems],
        [[stem, [5000], 11025] for stem in stems],
    ]
    # The same numbers as the package's own Separator.
    out = np.load(tmp_path / "out.npz")
    separator = Separator(model, segment_seconds=0.25, overlap=0.5)
    expected = separator.separate(song[None], 16000)
    for stem in stems:
        assert np.abs(out[f"0-{stem}"] - expected[stem]).max() < 1e-5
    expected = separator.separate(stereo, SR)
    for stem in stems:
        assert np.abs(out[f"1-{stem}"] - expected[stem]).max() < 1e-5


def test_pipeline_rejects_bad_input_with_one_line(saved_model, tmp_path):
    model, _ = saved_model
    separator = pipeline("music-source-separation", model=model)
    with pytest.raises(AudioError, match="input: 2 NaN or infinite"):
        separator(np.array([[0.0, np.nan, 0.0]] * 2, dtype=np.float32))
    with pytest.raises(AudioError, match="3-channel"):
        separator(np.zeros((3, 100), dtype=np.float32))
    with pytest.raises(AudioError, match="no such file"):
        separator(str(tmp_path / "missing.wav"))
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    with pytest.raises(AudioError, match="cannot read audio"):
        separator(str(tmp_path / "bad.wav"))
    with pytest.raises(ValueError, match="sampling_rate"):
        separator({"raw": np.zeros(100, dtype=np.float32)})
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="0 CUDA device"):
            pipeline("music-source-separation", model=model, device="cuda")
