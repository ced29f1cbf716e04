"""The web page in headless Chromium against the real stack: upload, record, clone, check the clone."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf
from service_stack import API_KEY_A, Service

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")

pytestmark = [pytest.mark.browser, pytest.mark.needs_data]


@pytest.fixture(scope="module")
def fake_microphone(real_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Chromium's fake capture device plays a WAV file: 4 s of real speech."""
    samples, sample_rate_hz = sf.read(real_clip, dtype="float32")
    path = tmp_path_factory.mktemp("microphone") / "speech.wav"
    sf.write(path, samples[: 4 * sample_rate_hz], sample_rate_hz, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def browser(fake_microphone: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/install.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_microphone}",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    errors = [driver.find_element("id", name).text for name in ("detect-error", "clone-error")]
    pytest.fail(f"{what} did not happen in {timeout_s:.0f} s; page errors: {errors}")


def verdict_of(driver) -> dict:
    find = driver.find_element
    return {
        "label": find("id", "verdict").text,
        "score": float(find("id", "score").text),
        "caption": find("id", "timeline-caption").text,
        "windows": len(driver.find_elements("css selector", "#timeline .cell")),
    }


def run_detect(driver, source_name: str) -> dict:
    """Click detect and wait for the verdict of ``source_name``."""
    driver.find_element("id", "detect-button").click()
    wait_for(
        driver,
        lambda: (
            driver.find_element("id", "detect-result").is_displayed()
            and driver.find_element("id", "timeline-caption").text.startswith(source_name)
        ),
        60,
        f"a verdict on {source_name}",
    )
    return verdict_of(driver)


def test_page_detects_an_upload_and_a_recording(
    browser, gateway_service: Service, detector_service: Service, fake_clip: Path
) -> None:
    driver = browser
    driver.get(gateway_service.url)
    driver.find_element("id", "api-key").send_keys(API_KEY_A)

    driver.find_element("id", "detect-file").send_keys(str(fake_clip))
    uploaded = run_detect(driver, fake_clip.name)
    assert uploaded["label"] == "fake" and 0.0 <= uploaded["score"] <= 1.0
    assert uploaded["windows"] >= 2
    # Piper's speech is synthetic but not vcfad's: the page says no watermark was found.
    assert driver.find_element("id", "watermark").text.startswith("Watermark: none found"), uploaded

    driver.find_element("id", "record-button").click()
    wait_for(driver, lambda: driver.find_element("id", "record-state").text == "recording…", 10, "recording")
    time.sleep(2.5)
    driver.find_element("id", "record-button").click()
    wait_for(driver, lambda: driver.find_element("id", "record-state").text.startswith("recorded"), 20, "WAV")
    recorded = run_detect(driver, "recording.wav")
    assert recorded["label"] in ("fake", "real") and recorded["windows"] >= 1
    assert driver.find_element("id", "detect-error").text == ""


@pytest.mark.slow
def test_page_clones_plays_downloads_and_checks_the_clone(
    browser, gateway_service: Service, detector_service: Service, real_clip: Path
) -> None:
    driver = browser
    driver.get(gateway_service.url)
    key = driver.find_element("id", "api-key")
    key.clear()
    key.send_keys(API_KEY_A)
    driver.find_element("id", "clone-refs").send_keys(str(real_clip))
    text = driver.find_element("id", "clone-text")
    text.clear()
    text.send_keys("Please call me back tomorrow.")
    driver.find_element("id", "clone-button").click()

    wait_for(driver, lambda: driver.find_element("id", "clone-progress").is_displayed(), 10, "the progress bar")
    wait_for(driver, lambda: driver.find_element("id", "clone-result").is_displayed(), 240, "the cloned audio")
    assert driver.find_element("id", "clone-status").text.startswith("succeeded")
    assert float(driver.find_element("id", "clone-progress").get_attribute("value")) == 1.0

    # Play: the browser decodes the WAV it fetched with the API key.
    duration_s = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const audio = document.getElementById("clone-audio");
        const report = () => audio.play().then(() => done(audio.duration)).catch((e) => done(String(e)));
        if (audio.readyState >= 1) report(); else audio.addEventListener("loadedmetadata", report);
        """
    )
    assert isinstance(duration_s, float) and duration_s > 1.0, duration_s

    # Download: the link's blob is the WAV the API serves.
    link = driver.find_element("id", "clone-download")
    assert link.get_attribute("download").endswith(".wav")
    wav = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        fetch(document.getElementById("clone-download").href).then((r) => r.arrayBuffer())
          .then((b) => done(Array.from(new Uint8Array(b.slice(0, 64 * 1024)))));
        """
    )
    header = bytes(wav)
    assert header[:4] == b"RIFF" and header[8:12] == b"WAVE" and header[12:16] == b"fmt "
    assert int.from_bytes(header[24:28], "little") >= 16_000  # sample rate

    driver.find_element("id", "check-clone").click()
    checked = wait_for(
        driver,
        lambda: driver.find_element("id", "timeline-caption").text.startswith("clone.wav") and verdict_of(driver),
        60,
        "a verdict on the clone",
    )
    assert 0.0 <= checked["score"] <= 1.0
    # Every clone carries the deployment's watermark: the page shows it found, where, and the
    # verdict it forces, whatever the classifier's score.
    assert checked["label"] == "fake", checked
    mark_text = driver.find_element("id", "watermark").text
    assert "vcfad watermark FOUND" in mark_text, mark_text
    assert driver.find_elements("css selector", "#watermark-strip .mark"), "no watermark windows drawn"
