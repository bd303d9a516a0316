"""index.html in headless chromium, from disk and served: search and filters
narrow the list, a video plays and seeks, its captions load, Chinese renders
with real glyphs, the keyboard alone can start an answer, posters and
durations are listed, a link opens its answer directly, and catalogue markup
is shown as text, never run."""

from __future__ import annotations

import re
import time

import pytest

pytest.importorskip("selenium", reason="pip install selenium (the `test` extra)")

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.browser.conftest import ENTRIES

ALL_ITEMS = 4  # register/en, chest-pain/en, chest-pain/zh, hostile/en
CJK_QUESTION = ENTRIES[1]["question"]["zh"]
HOSTILE_QUESTION = ENTRIES[2]["question"]
HOSTILE_ANSWER = ENTRIES[2]["answer"]


def wait_until(driver, script: str, timeout_s: float = 20.0):
    """Poll a JS expression until it is truthy; return its value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return ({script});")
        if value:
            return value
        time.sleep(0.1)
    state = driver.execute_script(
        "const v = document.getElementById('video');"
        "return {src: v.currentSrc, time: v.currentTime, paused: v.paused, error: v.error && v.error.message,"
        " ready: v.readyState, tracks: v.textTracks.length};"
    )
    raise AssertionError(f"not true within {timeout_s} s: {script}; video: {state}")


def shown(driver) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#results button .question')].map(s => s.textContent);"
    )


def search_for(driver, text: str) -> None:
    box = driver.find_element(By.ID, "search")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    if text:
        box.send_keys(text)


def open_item(driver, question: str) -> None:
    for button in driver.find_elements(By.CSS_SELECTOR, "#results button"):
        if button.find_element(By.CSS_SELECTOR, ".question").text == question:
            button.click()
            return
    raise AssertionError(f"{question!r} is not listed: {shown(driver)}")


def play_muted(driver) -> str:
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const video = document.getElementById('video'); video.muted = true;"
        "video.play().then(() => done('playing'), (e) => done('refused: ' + e));"
    )


def test_search_and_filters_narrow_the_list(page):
    assert len(shown(page)) == ALL_ITEMS
    assert page.find_element(By.ID, "summary").text == f"{ALL_ITEMS} of {ALL_ITEMS} answers"
    search_for(page, "register")
    assert shown(page) == ["Where do I register?"]
    search_for(page, "CHEST pain")  # every word, any case
    assert shown(page) == [ENTRIES[1]["question"]["en"]]
    search_for(page, "")
    Select(page.find_element(By.ID, "department")).select_by_value("registration")
    assert sorted(shown(page)) == sorted(["Where do I register?", HOSTILE_QUESTION])
    Select(page.find_element(By.ID, "department")).select_by_value("")
    Select(page.find_element(By.ID, "language")).select_by_value("zh")
    assert shown(page) == [CJK_QUESTION]
    search_for(page, "急救")  # a Chinese word inside the answer
    assert shown(page) == [CJK_QUESTION]
    search_for(page, "no such words")
    assert shown(page) == [] and page.find_element(By.ID, "empty").is_displayed()


def test_a_video_plays_seeks_and_shows_captions(page):
    open_item(page, "Where do I register?")
    assert play_muted(page) == "playing"
    wait_until(page, "document.getElementById('video').currentTime > 0.5")
    assert page.execute_script("return document.getElementById('video').error") is None
    cues = wait_until(
        page,
        "(document.getElementById('video').textTracks[0] || {cues: null}).cues"
        " && document.getElementById('video').textTracks[0].cues.length",
    )
    assert cues >= 1
    first_cue = page.execute_script("return document.getElementById('video').textTracks[0].cues[0].text")
    assert "register" in first_cue
    if page.origin == "file":  # from disk the track is the embedded text, as a Blob URL
        assert page.execute_script("return document.querySelector('#video track').src").startswith("blob:")
    else:  # served: the .vtt itself, and seeking works through byte ranges
        assert page.execute_script("return document.querySelector('#video track').src").endswith("captions.vtt")
        wait_until(page, "document.getElementById('video').seekable.length > 0")
        page.execute_script("const v = document.getElementById('video'); v.currentTime = v.duration - 0.4;")
        wait_until(
            page, "document.getElementById('video').currentTime > document.getElementById('video').duration - 0.6"
        )


def test_chinese_text_renders_with_real_glyphs(page, artifacts):
    Select(page.find_element(By.ID, "language")).select_by_value("zh")
    span = page.find_element(By.CSS_SELECTOR, "#results .question[lang=zh]")
    assert span.text == CJK_QUESTION
    family = page.execute_script("return getComputedStyle(arguments[0]).fontFamily", span)
    assert "Noto Sans CJK" in family
    # Two different Han characters drawn in the span's font: with a CJK font
    # they differ, with missing glyphs both are the same empty box ("tofu").
    glyphs = page.execute_script(
        """
        const style = getComputedStyle(arguments[0]);
        const canvas = document.createElement('canvas'); canvas.width = canvas.height = 48;
        const g = canvas.getContext('2d');
        function ink(text) {
          g.clearRect(0, 0, 48, 48); g.font = '32px ' + style.fontFamily; g.fillText(text, 4, 36);
          return Array.from(g.getImageData(0, 0, 48, 48).data).join(',');
        }
        return {a: ink('胸'), b: ink('口'), blank: ink(' '), width: arguments[0].getBoundingClientRect().width};
        """,
        span,
    )
    assert glyphs["a"] != glyphs["b"] and glyphs["a"] != glyphs["blank"], "CJK glyphs are missing (tofu)"
    open_item(page, CJK_QUESTION)
    assert play_muted(page) == "playing"
    wait_until(page, "document.getElementById('video').currentTime > 1.0")
    assert page.find_element(By.ID, "now-question").text == CJK_QUESTION
    page.save_screenshot(str(artifacts / f"player-{page.origin}.png"))


def test_keyboard_alone_starts_an_answer(page):
    first = page.execute_script("return document.querySelector('#results button')")
    actions = ActionChains(page)
    for presses in range(1, 7):  # noqa: B007 - read after the loop
        actions.send_keys(Keys.TAB).perform()
        if page.execute_script("return document.activeElement === arguments[0]", first):
            break
    assert presses <= 4, "search, department, language, then the first answer"
    actions.send_keys(Keys.ENTER).perform()
    wait_until(page, "!document.getElementById('video').paused && document.getElementById('video').currentTime > 0.3")
    expected = first.find_element(By.CSS_SELECTOR, ".question").text
    assert page.find_element(By.ID, "now-question").text == expected
    assert first.get_attribute("aria-current") == "true"


def test_catalogue_markup_is_shown_as_text_never_run(page):
    search_for(page, "onerror")
    assert shown(page) == [HOSTILE_QUESTION]
    open_item(page, HOSTILE_QUESTION)
    assert page.find_element(By.ID, "now-answer").text == HOSTILE_ANSWER
    # the only images are the poster thumbnails the page made, none with a handler
    assert page.execute_script("return document.querySelectorAll('img:not(.thumb), img[onerror]').length") == 0
    time.sleep(0.3)  # give an injected handler the chance it must not have
    assert page.execute_script("return window.pwned === undefined")


def test_the_list_shows_poster_thumbnails_and_durations(page):
    rows = wait_until(
        page,
        "[...document.querySelectorAll('#results button')].every(b => b.querySelector('img.thumb').complete"
        " && b.querySelector('img.thumb').naturalWidth > 0)"
        " && [...document.querySelectorAll('#results button')].map(b => ["
        "b.querySelector('img.thumb').getAttribute('src'), b.querySelector('.meta').textContent])",
    )
    assert len(rows) == ALL_ITEMS
    for src, meta in rows:
        assert src.startswith("videos/") and src.endswith("/poster.jpg")
        assert re.fullmatch(r".+ · (en|zh) · 0:0[1-9]", meta), meta


def test_a_link_opens_its_answer_and_follows_the_choice(page):
    base = page.current_url.split("#")[0]
    page.get("about:blank")
    page.get(base + "#entry=chest-pain&lang=zh")  # a fresh page load
    wait_until(page, "document.getElementById('video').currentSrc.indexOf('/chest-pain/zh/') !== -1")
    assert page.find_element(By.ID, "now-question").text == CJK_QUESTION
    assert page.find_element(By.CSS_SELECTOR, "#results button[aria-current=true] .question").text == CJK_QUESTION
    assert re.fullmatch(r"0:0[1-9]", page.find_element(By.ID, "now-duration").text)
    open_item(page, "Where do I register?")
    assert page.execute_script("return window.location.hash") == "#entry=register&lang=en"
    link = page.find_element(By.ID, "now-link")
    assert link.is_displayed() and link.get_attribute("href") == base + "#entry=register&lang=en"
    page.get(base + "#entry=chest-pain&lang=en")  # the same page, a new hash
    wait_until(page, "document.getElementById('video').currentSrc.indexOf('/chest-pain/en/') !== -1")
    assert page.find_element(By.ID, "now-question").text == ENTRIES[1]["question"]["en"]
