"""The widget on other sites: options, isolation from the page's CSS, CORS, and failures of the service."""

import re
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from ..conftest import free_port
from .test_widget import QUESTION, ask, open_widget

pytestmark = pytest.mark.slow

OPTIONS = {
    "title": "Ask the clinic",
    "placeholder": "Type here",
    "lang": "en",
    "position": "bottom-left",
    "primary_color": "#0a7f5a",
    "open": "true",
}


def test_a_third_party_page_with_every_option(page, site, medrag_server, artifacts):
    page.goto(f"{site.url}/?{urlencode(OPTIONS)}")
    before = page.locator("#content").evaluate("main => main.outerHTML")
    dialog = page.get_by_role("dialog", name="Ask the clinic")
    expect(dialog).to_be_visible()  # data-open
    box = page.get_by_role("textbox", name="Question")
    expect(box).to_have_attribute("placeholder", "Type here")
    expect(box).not_to_be_focused()  # opening on load must not take the page's focus
    launcher = page.get_by_role("button", name="Close").last
    assert launcher.bounding_box()["x"] < 100  # bottom-left
    assert launcher.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(10, 127, 90)"
    # The page's `* { font-size: 30px !important }` and `textarea { display: inline !important }` stay outside.
    assert box.evaluate("b => getComputedStyle(b).fontSize") == "14px"
    assert box.evaluate("b => getComputedStyle(b).display") != "inline"
    message = ask(page, "How many parameters does MedGPT have?", textbox="Question")
    expect(message.locator(".answer")).to_contain_text("1000")
    message.get_by_role("button", name="Source 1").first.click()
    expect(message.get_by_role("link", name=re.compile("Original article"))).to_be_visible()
    assert "/ask/stream" in page.requests.paths(medrag_server.url)  # across origins, allowed by CORS
    # The widget added one element to the page and changed nothing else.
    assert page.locator("#content").evaluate("main => main.outerHTML") == before
    assert page.evaluate("[...document.body.children].map(e => e.tagName)") == ["MAIN", "SCRIPT", "MEDRAG-CHAT"]
    page.screenshot(path=artifacts / "widget-third-party-page.png")


def test_a_page_not_listed_in_cors_origins_gets_a_clear_message(page, site):
    page.goto(f"{site.other_url}/?open=true")
    message = ask(page, QUESTION)
    expect(message).to_have_class("msg bot error")
    expect(message).to_contain_text("无法连接到问答服务")


def test_an_unreachable_service_gets_a_clear_message(page, site):
    page.goto(f"{site.url}/?open=true&api=http://127.0.0.1:{free_port()}")
    message = ask(page, QUESTION)
    expect(message).to_have_class("msg bot error")
    expect(message).to_contain_text("无法连接到问答服务，请检查网络后重试。")


def test_when_streaming_fails_the_widget_asks_plain_ask(page, medrag_server):
    page.route("**/ask/stream", lambda route: route.abort())
    page.goto(medrag_server.url + "/")
    open_widget(page)
    message = ask(page, QUESTION)
    expect(message.locator(".answer")).to_contain_text("1000亿参数")
    expect(message.locator(".badge")).to_have_count(1)
    assert "/ask" in page.requests.paths(medrag_server.url)


def scripted(page, site, scenario: str) -> None:
    page.goto(f"{site.url}/scripted?scenario={scenario}&open=true")


def test_answer_text_appears_as_it_streams(page, site, artifacts):
    scripted(page, site, "slow")
    box = page.get_by_role("textbox", name="问题")
    box.fill("慢慢回答")
    box.press("Enter")
    message = page.locator("medrag-chat .msg.bot").last
    # The first piece is on screen while the answer is still being produced (the second is 1.5 s away).
    expect(message.locator(".answer")).to_have_text("第一句。[1]", timeout=1400)
    expect(message).to_have_attribute("aria-busy", "true")
    expect(message.locator(".badge")).to_have_count(0)
    page.screenshot(path=artifacts / "widget-streaming.png")
    expect(message).not_to_have_attribute("aria-busy", "true", timeout=5000)
    badges = message.locator(".badge")
    expect(badges).to_have_count(2)
    expect(message.locator(".cite")).to_have_count(1)  # both markers cite one passage
    badges.last.click()
    expect(badges.first).to_have_attribute("aria-expanded", "true")
    expect(message.locator("mark")).to_have_text(["第一句。", "第二句。"])


def test_an_error_event_is_shown_as_an_error(page, site):
    scripted(page, site, "error")
    message = ask(page, "会出错的问题")
    expect(message).to_have_class("msg bot error")
    expect(message).to_have_text(re.compile("服务出错：the language model stopped answering$"))
    expect(message.locator(".actions")).to_have_count(0)


def test_a_stream_that_hangs_times_out_with_a_message(page, site):
    scripted(page, site, "hang")
    message = ask(page, "不会结束的问题")
    expect(message).to_have_class("msg bot error")
    expect(message).to_contain_text("请求超时（2 秒没有回应），请稍后重试。")


def test_a_long_answer_that_keeps_coming_does_not_time_out(page, site):
    scripted(page, site, "trickle")
    message = ask(page, "很长的回答")
    expect(message.locator(".badge")).to_have_count(2)
    expect(message.locator(".answer")).to_have_text("第一句。1第二句。1")


def test_a_stream_cut_short_falls_back_to_plain_ask(page, site):
    scripted(page, site, "cut")
    message = ask(page, "断掉的流")
    expect(message.locator(".answer")).to_have_text("第一句。1第二句。1")
    assert "/scenario/cut/ask" in page.requests.paths(site.url)


def test_hostile_answer_and_citation_are_inert(page, site):
    scripted(page, site, "hostile")
    message = ask(page, "注入")
    expect(message.locator(".answer")).to_contain_text(
        '看这里<img src="http://127.0.0.1:9/x.png" onerror="window.medragPwned=1">'
    )
    message.locator(".badge").click()
    expect(message.locator("blockquote")).to_have_text("<script>window.medragPwned=3</script>")
    # javascript:, data: and scheme-relative URLs are dropped; only the https link is made.
    links = message.get_by_role("link")
    expect(links).to_have_count(1)
    expect(links).to_have_attribute("href", "https://example.org/ok")
    assert page.locator("medrag-chat img, medrag-chat script").count() == 0
    assert page.evaluate("window.medragPwned") is None
    assert not [url for url in page.requests.urls if url.startswith("http://127.0.0.1:9/")]
