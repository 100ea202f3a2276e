"""The web demo (`app.py`) in a real headless browser: Debian's chromium driven by Selenium."""

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import wave
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import make_tiny_config

from modeling_tfswa import TFSWAUNet

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
SR = 8000

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python app.py` serving a tiny model, until the module's tests are done."""
    folder = tmp_path_factory.mktemp("app")
    torch.manual_seed(0)
    TFSWAUNet(make_tiny_config(sample_rate=SR, segment_seconds=0.5)).save_pretrained(
        folder / "model"
    )
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    env["GRADIO_TEMP_DIR"] = str(folder / "gradio")
    log = open(folder / "app.log", "w+")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--model", str(folder / "model"), "--port",
         str(port), "--device", "auto"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            pytest.fail(f"app.py exited: {log.read()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        pytest.fail("app.py did not start serving within 180 s")
    yield url, folder
    process.terminate()
    process.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def upload_and_separate(driver, url, song):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, 120)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "input[type=file]")).send_keys(str(song))
    # The upload is in once the song's own player shows its duration.
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "time#duration"))
    driver.find_element(By.XPATH, "//button[normalize-space()='Separate']").click()
    return wait


#: Plays `arguments[0]` muted in the page; answers its duration once playback has advanced.
PLAY = """
const done = arguments[arguments.length - 1];
const audio = new Audio(arguments[0]);
audio.muted = true;
audio.addEventListener("timeupdate", () => {
  if (audio.currentTime > 0) { audio.pause(); done({duration: audio.duration}); }
});
audio.addEventListener("error", () => done({error: String(audio.error && audio.error.code)}));
audio.play().catch(error => done({error: String(error)}));
"""


def test_upload_separate_play_and_download(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, _ = server
    song = tmp_path / "song.wav"
    sf.write(song, (0.2 * np.random.default_rng(0).standard_normal((2 * SR, 2))).astype("f4"), SR)
    wait = upload_and_separate(browser, url, song)
    link = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#stems-zip a"))[0]
    for stem in ("vocals", "accompaniment"):
        player = browser.find_element(By.ID, f"stem-{stem}")
        duration = player.find_element(By.CSS_SELECTOR, "time#duration")
        # the player shows 0:00 until its audio has loaded (slow on a loaded machine)
        wait.until(lambda d, duration=duration: duration.text != "0:00")
        assert duration.text == "0:02"
        href = player.find_element(By.CSS_SELECTOR, "a.download-link").get_attribute("href")
        played = browser.execute_async_script(PLAY, href)
        assert "error" not in played and abs(played["duration"] - 2.0) < 0.01, played
    assert not [e for e in browser.find_elements(By.ID, "stem-no_vocals") if e.is_displayed()]
    image = browser.find_element(By.CSS_SELECTOR, "#spectrograms img")
    assert browser.execute_script("return arguments[0].naturalWidth", image) > 0
    with urllib.request.urlopen(link.get_attribute("href"), timeout=30) as response:
        bundle = zipfile.ZipFile(io.BytesIO(response.read()))
    assert sorted(bundle.namelist()) == ["song/accompaniment.wav", "song/vocals.wav"]
    with wave.open(bundle.open("song/vocals.wav")) as stem:
        assert (stem.getframerate(), stem.getnchannels(), stem.getnframes()) == (SR, 2, 2 * SR)


def test_errors_show_on_the_page(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, _ = server
    song = tmp_path / "broken.wav"
    data = np.zeros((SR, 2), dtype="f4")
    data[100, 1] = np.nan
    sf.write(song, data, SR, subtype="FLOAT")
    wait = upload_and_separate(browser, url, song)
    message = wait.until(
        lambda d: [e for e in d.find_elements(By.CSS_SELECTOR, ".toast-body") if e.text]
    )
    assert "1 NaN or infinite sample(s)" in message[0].text
    assert "Traceback" not in browser.page_source
