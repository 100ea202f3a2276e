"""Hub pushes through the fake Hub of conftest.py (a mocked HTTP transport): right files sent; a failing Hub never stops training."""

import logging
import subprocess
import sys
import threading

import huggingface_hub
import pytest
from huggingface_hub import constants

from modeling_tfswa import TFSWAUNet
from modeling_tfswa.training.hub import HubPusher


def test_push_sends_the_saved_model_folder(fake_hub, tmp_path, tiny_config):
    hub = fake_hub
    folder = tmp_path / "best"
    TFSWAUNet(tiny_config).save_pretrained(folder)
    pusher = HubPusher("me/model")
    assert pusher.push(folder, "step 10")
    # The trainer may overwrite the folder right away: the push uses a snapshot.
    (folder / "config.json").write_text("overwritten")
    assert pusher.wait(30)
    assert pusher.pushed == ["step 10"] and pusher.failures == 0
    (files,) = hub.commits
    expected = {p.name for p in folder.iterdir() if p.is_file()}
    assert set(files) == expected and "model.safetensors" in files
    assert files["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    assert files["config.json"] != b"overwritten"


def test_one_push_in_flight(fake_hub, tmp_path):
    gate = threading.Event()
    hub = fake_hub
    hub.gate = gate
    (tmp_path / "a.txt").write_text("a")
    pusher = HubPusher("me/model")
    assert pusher.push(tmp_path, "first")
    assert not pusher.push(tmp_path, "second")  # the first is still blocked on the gate
    gate.set()
    assert pusher.wait(30) and pusher.pushed == ["first"] and len(hub.commits) == 1


def test_failing_hub_warns_and_retries_next_time(fake_hub, tmp_path, caplog):
    hub = fake_hub
    hub.fail = True
    (tmp_path / "a.txt").write_text("a")
    pusher = HubPusher("me/model")
    with caplog.at_level(logging.WARNING):
        assert pusher.push(tmp_path, "step 1")  # returns at once; the failure happens in the thread
        assert pusher.wait(60)
    assert pusher.failures == 1 and isinstance(pusher.last_error, Exception)
    assert "training goes on" in caplog.text
    hub.fail = False
    assert pusher.push(tmp_path, "step 2") and pusher.wait(30)
    assert pusher.pushed == ["step 2"] and len(hub.commits) == 1


def _hub_run(tmp_path, **overrides):
    from test_training import ToyStems, tiny_config

    from modeling_tfswa.training.trainer import train

    config = tiny_config(
        tmp_path, push_to_hub=True, hub_model_id="me/model", max_steps=4, save_every=2, **overrides
    )
    return train(config, train_dataset=ToyStems(), validation_dataset=ToyStems(length=2))


def test_training_pushes_the_last_model_at_checkpoints(fake_hub, tmp_path):
    hub = fake_hub
    result = _hub_run(tmp_path)
    assert result.step == 4
    # Step 2 and step 4 were pushed (the first may still run when step 4 arrives: then skipped).
    assert 1 <= len(hub.commits) <= 2
    last = result.output_dir / "last"
    assert set(hub.commits[-1]) == {p.name for p in last.iterdir()}
    assert hub.commits[-1]["model.safetensors"] == (last / "model.safetensors").read_bytes()
    assert "library_name: transformers" in hub.validated[-1]  # the model card's metadata


def test_failing_hub_leaves_training_running(fake_hub, tmp_path, caplog):
    hub = fake_hub
    hub.fail = True
    with caplog.at_level(logging.WARNING):
        result = _hub_run(tmp_path)
    assert result.step == 4 and (result.output_dir / "last" / "model.safetensors").is_file()
    assert hub.requests and not hub.commits  # it tried, and failed, without stopping training
    assert "training goes on" in caplog.text


def test_without_the_fake_hub_no_request_leaves(monkeypatch):
    """conftest.py's session-wide client refuses every request unless a test installs the fake."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(Exception, match="tests do not reach the network"):
        huggingface_hub.HfApi(token="hf_fake_token").model_info("me/model")


def test_model_repositories_are_private_by_default(fake_hub, tmp_path):
    hub = fake_hub
    _hub_run(tmp_path)
    assert hub.created and all(body["visibility"] == "private" for body in hub.created)
    hub.created.clear()
    _hub_run(tmp_path / "public", hub_private=False)  # a public model is an explicit choice
    assert hub.created and all(body.get("visibility") != "private" for body in hub.created)


def test_tokens_are_read_from_a_file_or_an_environment_variable(tmp_path, monkeypatch, capsys):
    from data_scripts.cli import main as data_main
    from data_scripts.clitools import read_token

    token_file = tmp_path / "token"
    token_file.write_text("hf_from_file\n")
    monkeypatch.setenv("MY_HUB_TOKEN", "hf_from_env")
    assert read_token(str(token_file)) == "hf_from_file"
    assert read_token("MY_HUB_TOKEN") == "hf_from_env"
    assert read_token(None) is None
    with pytest.raises(ValueError, match="not the token itself"):
        read_token("hf_literal_token_value")
    assert data_main(["push", str(tmp_path), "me/data", "--token", "hf_literal_token_value"]) == 2
    assert capsys.readouterr().err.startswith("error: --token: give a file")


HANGING_HUB_PUSH = """
import sys, time, httpx2, huggingface_hub
from huggingface_hub import constants
constants.HF_HUB_OFFLINE = False
constants.HF_HUB_DISABLE_XET = True


def hang(request):
    time.sleep(300)
    raise httpx2.ConnectError("no answer", request=request)


huggingface_hub.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(hang)))
from modeling_tfswa.training.hub import HubPusher

pusher = HubPusher("me/model", token="hf_fake")
assert pusher.push(sys.argv[1], "step 1")
assert not pusher.wait(timeout=0.5)
"""


def test_a_hanging_hub_does_not_hold_the_end_of_the_process(tmp_path):
    # Why not upload_folder(run_as_future=True): the interpreter joins its executor at exit
    # (modeling_tfswa/training/hub.py). Our push thread is dropped once training stops waiting.
    (tmp_path / "a.txt").write_text("a")
    process = subprocess.run(
        [sys.executable, "-c", HANGING_HUB_PUSH, str(tmp_path)], timeout=240, capture_output=True
    )  # the Hub answers after 300 s; the process must not wait for it
    assert process.returncode == 0, process.stderr.decode()[-2000:]
