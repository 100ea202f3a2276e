"""`init_from`: fine-tuning starts from a saved model's weights; other stems keep the trunk. Also the
model card written with every saved model."""

import pytest
import torch
from huggingface_hub import ModelCard
from test_training import SR, TINY, ToyStems, tiny_config, weights

from modeling_tfswa import TFSWAConfig, TFSWAUNet
from modeling_tfswa.training.config import load_config
from modeling_tfswa.training.init import InitFromError, init_from_pretrained
from modeling_tfswa.training.model_card import build_model_card
from modeling_tfswa.training.trainer import train


def tiny_model(stems=("vocals", "accompaniment"), **overrides):
    """configs/tiny.yaml's model (the one the trainer builds in these tests)."""
    config = load_config(TINY, {"model.sample_rate": SR}).model_config().to_dict()
    return TFSWAUNet(TFSWAConfig(**{**config, "stems": list(stems), **overrides}))


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory):
    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("source")
    tiny_model().save_pretrained(folder)
    return folder


def fresh(stems=("vocals", "accompaniment"), **overrides):
    torch.manual_seed(2)
    return tiny_model(stems, **overrides)


def test_same_stems_load_every_weight(source_dir):
    model = fresh()
    report = init_from_pretrained(model, str(source_dir))
    assert report.new == [] and len(report.loaded) == len(model.state_dict())
    source = weights(source_dir)
    for name, tensor in model.state_dict().items():
        if name in source:  # non-persistent buffers are not saved
            assert torch.equal(tensor, source[name]), name


def test_other_stems_load_the_trunk_and_renew_the_head(source_dir):
    model = fresh(stems=("vocals", "drums", "bass"))
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    report = init_from_pretrained(model, str(source_dir))
    assert report.new and all("head" in name for name in report.new)
    source = weights(source_dir)
    for name, tensor in model.state_dict().items():
        if name in report.new:
            assert torch.equal(tensor, before[name]), name  # its own initialisation
        elif name in source:
            assert torch.equal(tensor, source[name]), name
    # Same number of stems, other names: the head's shapes match but its meaning does not.
    renamed = fresh(stems=("vocals", "other"))
    assert init_from_pretrained(renamed, str(source_dir)).new == report.new


def test_what_cannot_initialise_the_model_says_so(source_dir, tmp_path):
    with pytest.raises(InitFromError, match="not a TFSWA-UNet"):
        init_from_pretrained(fresh(), str(tmp_path))
    with pytest.raises(InitFromError, match="n_fft is 256, this run's model has 512"):
        init_from_pretrained(fresh(n_fft=512, hop_length=128), str(source_dir))
    with pytest.raises(InitFromError, match="only the stems may differ"):
        init_from_pretrained(fresh(dims=[8, 24], num_heads=[1, 2]), str(source_dir))
    with pytest.raises(InitFromError, match="lacks"):  # no time/frequency attention here
        init_from_pretrained(fresh(tf_attention_stages=[False, False]), str(source_dir))


def test_training_starts_from_the_source_weights(source_dir, tmp_path):
    # A learning rate of ~0: the saved (EMA) weights after one step are the source's.
    config = tiny_config(
        tmp_path,
        init_from=str(source_dir),
        max_steps=1,
        eval_every=1,
        save_every=1,
        **{"optim.lr": 1e-12, "optim.weight_decay": 0.0},
    )
    result = train(config, train_dataset=ToyStems(length=2), validation_dataset=ToyStems(length=2))
    source, trained = weights(source_dir), weights(result.output_dir / "last")
    assert source.keys() == trained.keys()
    assert max((source[name] - trained[name]).abs().max().item() for name in source) < 1e-6
    card = (result.output_dir / "last" / "README.md").read_text()
    assert f"Fine-tuned from `{source_dir}`" in card


def test_model_card_metadata_and_scores(tmp_path):
    config = tiny_config(tmp_path, hub_model_id="user/tfswa-tiny")
    metrics = {"sdr/vocals": 4.25, "sdr/accompaniment": 9.5, "sdr_gain/vocals": 3.0}
    card = build_model_card(config, metrics, 12, evaluation={"vocals": 5.125, "accompaniment": 11})
    assert card.data.pipeline_tag == "audio-to-audio" and card.data.library_name == "transformers"
    results = {(r.dataset_split, r.metric_name): r.metric_value for r in card.data.eval_results}
    assert results[("validation", "SDR vocals (validation segments, median, dB)")] == 4.25
    assert results[("test", "SDR accompaniment (tfswa-evaluate, dB)")] == 11
    assert len(results) == 4
    text = str(card)
    assert 'pipeline("music-source-separation", model="user/tfswa-tiny"' in text
    assert "0.25-s segments" in text and "| vocals | 4.25 | 3.00 | 5.12 |" in text
    assert "log power" not in text  # the card names the inputs the model has
    config.model["log_power_input"] = True
    assert "beside each channel's log power" in str(build_model_card(config, metrics, 12))
    (tmp_path / "README.md").write_text(text)
    loaded = ModelCard.load(tmp_path / "README.md")
    assert "model-index" in loaded.content and len(loaded.data.eval_results) == 4
