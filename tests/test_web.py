"""The "아무말 대잔치" page in a real headless chromium: type Korean, click 생성, watch Hangul stream in.

Drives Debian's ``/usr/bin/chromium`` through ``/usr/bin/chromedriver`` with selenium (the driver is
given explicitly, so Selenium Manager never downloads anything). The screenshot goes to a temporary
directory; set ``KOGPT2_SCREENSHOT=docs/screenshot.png`` to refresh the README's picture on purpose.
CI installs both packages in ``.ci/run``; without them the test skips with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
HANGUL = re.compile("[가-힣]")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--lang=ko-KR"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_tokenizer):
    """Base URL of a live server: the bundled model when present, else a tiny random one."""
    import uvicorn
    from conftest import make_tiny_model_dir

    from kogpt2.paths import bundled_model_dir
    from kogpt2.serve import ServeConfig, create_app

    model_dir = bundled_model_dir()
    if not (model_dir / "config.json").is_file():
        model_dir = make_tiny_model_dir(tmp_path_factory.mktemp("web"), tiny_tokenizer, n_positions=512)
    app = create_app(model_dir, ServeConfig(model_name="kogpt2-small" if model_dir.name == "kogpt2-small"
                                            else "tiny-random"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip("no browser: install Debian's chromium and chromium-driver "
                    "(apt-get install -y chromium chromium-driver), as .ci/run does")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[dev])")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="kogpt2-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS + [f"--user-data-dir={profile}", "--window-size=760,1000"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _wait(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_generate_streams_hangul_and_screenshot(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(server)
    assert "아무말 대잔치" in browser.title
    _wait(lambda: "모델:" in browser.find_element(By.ID, "model").text, 20, "the model name")
    # count DOM updates of the output: a streamed answer arrives in many pieces, not one
    browser.execute_script(
        "window.__updates = 0; new MutationObserver(() => window.__updates++)"
        ".observe(document.getElementById('output'), {subtree: true, childList: true, characterData: true});")
    box = browser.find_element(By.ID, "prompt")
    box.clear()
    box.send_keys("옛날 옛적에 호랑이가")
    browser.find_element(By.ID, "generate").click()
    tail = lambda: browser.find_element(By.CSS_SELECTOR, "#output .completion").text  # noqa: E731
    _wait(lambda: HANGUL.search(tail()), 60, "Hangul in the output")
    _wait(lambda: browser.find_element(By.ID, "status").text.startswith("완료"), 120, "the end of generation")
    assert HANGUL.search(tail())
    assert browser.execute_script("return window.__updates") > 3
    assert browser.find_element(By.CSS_SELECTOR, "#output .prompt").text == "옛날 옛적에 호랑이가"
    shot = tmp_path / "screenshot.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("KOGPT2_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["KOGPT2_SCREENSHOT"])


def test_chat_tab_answers(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server)
    browser.find_element(By.ID, "tab-chat").click()
    assert browser.find_element(By.ID, "panel-chat").is_displayed()
    browser.find_element(By.ID, "chat-input").send_keys("안녕하세요, 오늘 기분이 어때요?")
    browser.find_element(By.ID, "send").click()
    bubble = lambda: browser.find_elements(By.CSS_SELECTOR, "#log .msg.assistant")  # noqa: E731
    _wait(lambda: bubble() and bubble()[-1].text.strip(), 60, "an assistant answer")
    assert browser.find_element(By.CSS_SELECTOR, "#log .msg.user").text == "안녕하세요, 오늘 기분이 어때요?"


def test_phone_width_has_no_horizontal_scroll(server, browser):
    browser.set_window_size(375, 800)
    try:
        browser.get(server)
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        from selenium.webdriver.common.by import By

        assert browser.find_element(By.ID, "generate").is_displayed()
    finally:
        browser.set_window_size(760, 1000)
