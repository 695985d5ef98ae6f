"""The chat widget in Chromium against the real server: streamed answers, citations, habits, safety."""

import json
import re

import httpx
import pytest
from playwright.sync_api import expect

from .conftest import PHONE, QINGLAN_URL

pytestmark = pytest.mark.slow

QUESTION = "MedGPT有多少参数？"


def open_widget(page, label: str = "打开问答助手") -> None:
    page.get_by_role("button", name=label).click()
    expect(page.get_by_role("dialog")).to_be_visible()


def ask(page, question: str, textbox: str = "问题"):
    """Type a question, press Enter, wait for the answer to finish; returns the answer's message."""
    answers = page.locator("medrag-chat .msg.bot .answer")
    before = answers.count()
    box = page.get_by_role("textbox", name=textbox)
    box.fill(question)
    box.press("Enter")
    expect(answers).to_have_count(before + 1)
    expect(page.locator("medrag-chat [aria-busy]")).to_have_count(0, timeout=30_000)
    return page.locator("medrag-chat .msg.bot").last


def check_citation(message) -> None:
    """Click the first badge and check the passage, section, title and source link it reveals."""
    badge = message.locator(".badge").first
    expect(badge).to_have_text("1")
    expect(badge).to_have_attribute("aria-expanded", "false")
    region = message.get_by_role("region", name="来源 1")
    expect(region).to_be_hidden()
    badge.click()
    expect(badge).to_have_attribute("aria-expanded", "true")
    expect(region).to_be_visible()
    expect(region.locator("blockquote")).to_contain_text("1000亿参数")
    expect(region.locator("mark")).to_have_text("参数规模：1000亿参数，行业领先。")  # the quoted sentence
    expect(region.locator(".cite-section")).to_contain_text("MedGPT：国内首个自研医疗大语言模型")
    expect(region.locator(".cite-title")).to_contain_text("中国医学语言模型发展现状与前景分析")
    link = region.get_by_role("link").first
    expect(link).to_have_attribute("href", "https://www.sohu.com/a/752216224_121695294")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")


def test_demo_page_streams_an_answer_with_clickable_citations(page, medrag_server, artifacts):
    page.goto(medrag_server.url + "/")
    open_widget(page)
    expect(page.get_by_role("textbox", name="问题")).to_be_focused()
    message = ask(page, QUESTION)
    expect(message.locator(".answer")).to_contain_text("1000亿参数")
    assert "/ask/stream" in page.requests.paths(medrag_server.url)
    assert "/ask" not in page.requests.paths(medrag_server.url), "fell back to /ask instead of streaming"
    check_citation(message)
    page.screenshot(path=artifacts / "widget-desktop.png")


def test_phone_width(browser, medrag_server, artifacts):
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(medrag_server.url + "/")
    open_widget(page)
    message = ask(page, QUESTION)
    check_citation(message)
    panel = page.get_by_role("dialog").bounding_box()
    assert panel["x"] >= 0 and panel["x"] + panel["width"] <= PHONE["width"]
    assert panel["y"] >= 0 and panel["y"] + panel["height"] <= PHONE["height"]
    send = page.get_by_role("button", name="发送").bounding_box()
    assert send["x"] + send["width"] <= PHONE["width"] and send["y"] + send["height"] <= PHONE["height"]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=artifacts / "widget-phone.png")
    context.close()


def test_not_found_is_shown_as_not_found(page, medrag_server):
    page.goto(medrag_server.url + "/")
    open_widget(page)
    message = ask(page, "火星上有多少座火山？")
    expect(message).to_have_class("msg bot notfound")
    expect(message).to_contain_text("未找到答案")
    expect(message.locator(".badge")).to_have_count(0)


def test_enter_while_an_ime_is_composing_does_not_send(page, medrag_server):
    page.goto(medrag_server.url + "/")
    open_widget(page)
    box = page.get_by_role("textbox", name="问题")
    box.fill("MedGPT有多少")
    box.press("End")
    cdp = page.context.new_cdp_session(page)
    # A real composition: pinyin typed, candidates open; the Enter that picks one must not send.
    cdp.send("Input.imeSetComposition", {"text": "canshu", "selectionStart": 6, "selectionEnd": 6})
    page.keyboard.press("Enter")
    # Some IMEs report keyCode 229 instead of isComposing.
    cdp.send(
        "Input.dispatchKeyEvent",
        {
            "type": "rawKeyDown",
            "key": "Enter",
            "code": "Enter",
            "windowsVirtualKeyCode": 229,
            "nativeVirtualKeyCode": 229,
        },
    )
    cdp.send(
        "Input.dispatchKeyEvent",
        {"type": "keyUp", "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 229, "nativeVirtualKeyCode": 229},
    )
    page.wait_for_timeout(300)
    assert "/ask/stream" not in page.requests.paths(medrag_server.url)
    expect(page.locator("medrag-chat .msg.user")).to_have_count(0)
    cdp.send("Input.insertText", {"text": "参数"})  # the candidate is picked; composition ends
    # A real IME swallows the Enter it uses; this emulated one lets Chromium add a newline.
    expect(box).to_have_value(re.compile(r"^MedGPT有多少参数\n*$"))
    box.fill("MedGPT有多少参数")
    box.press("Shift+Enter")
    expect(box).to_have_value("MedGPT有多少参数\n")
    expect(page.locator("medrag-chat .msg.user")).to_have_count(0)
    box.press("Enter")  # now it sends
    expect(page.locator("medrag-chat .msg.user")).to_have_text("MedGPT有多少参数")
    expect(page.locator("medrag-chat [aria-busy]")).to_have_count(0, timeout=30_000)
    assert page.requests.paths(medrag_server.url).count("/ask/stream") == 1


def test_markup_in_a_document_is_shown_as_text(page, medrag_server):
    page.goto(medrag_server.url + "/")
    open_widget(page)
    message = ask(page, "Zorvex的推荐剂量是多少？")
    answer = message.locator(".answer")
    expect(answer).to_contain_text('<img src="http://127.0.0.1:9/pwned.png" onerror="window.medragPwned=1">')
    expect(answer).to_contain_text("<script>window.medragPwned=2</script>")
    message.locator(".badge").first.click()
    expect(message.locator("blockquote")).to_contain_text("<script>window.medragPwned=2</script>")
    expect(message.get_by_role("link")).to_have_attribute("href", "http://127.0.0.1:9/zorvex-label")
    assert page.locator("medrag-chat img, medrag-chat script, medrag-chat iframe").count() == 0
    assert page.evaluate("window.medragPwned") is None
    assert not [url for url in page.requests.urls if "pwned" in url]


def test_conversation_survives_a_reload_and_ends_with_the_session(page, context, medrag_server):
    page.goto(medrag_server.url + "/")
    open_widget(page)
    ask(page, QUESTION)
    page.reload()
    expect(page.get_by_role("dialog")).to_be_visible()  # it was open, so it opens again
    expect(page.locator("medrag-chat .msg.user")).to_have_text(QUESTION)
    message = page.locator("medrag-chat .msg.bot").last
    expect(message.locator(".answer")).to_contain_text("1000亿参数")
    check_citation(message)
    page.get_by_role("button", name="新对话").click()
    expect(page.locator("medrag-chat .msg.user")).to_have_count(0)
    page.reload()
    expect(page.locator("medrag-chat .msg.user")).to_have_count(0)


def test_copy_puts_the_answer_and_its_sources_on_the_clipboard(page, context, medrag_server):
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=medrag_server.url)
    page.goto(medrag_server.url + "/")
    open_widget(page)
    message = ask(page, QUESTION)
    message.get_by_role("button", name="复制回答").click()
    expect(message.get_by_role("status")).to_have_text("已复制")
    expected = httpx.post(f"{medrag_server.url}/ask", json={"question": QUESTION}, timeout=60).json()
    [citation] = expected["citations"]
    assert page.evaluate("navigator.clipboard.readText()") == (
        f"{expected['answer']}\n\n[1] {citation['title']} > {citation['section']} {citation['source_urls'][0]}"
    )


def test_feedback_is_stored_by_the_server(page, medrag_server):
    page.goto(medrag_server.url + "/")
    open_widget(page)
    message = ask(page, QUESTION)
    up = message.get_by_role("button", name="有帮助", exact=True)
    down = message.get_by_role("button", name="没有帮助", exact=True)
    expect(up).to_have_attribute("aria-pressed", "false")
    up.click()
    expect(message.get_by_role("status")).to_have_text("谢谢反馈！")
    expect(up).to_have_attribute("aria-pressed", "true")
    expect(down).to_be_disabled()
    records = [json.loads(line) for line in medrag_server.feedback_path.read_text(encoding="utf-8").splitlines()]
    mine = [r for r in records if r["question"] == QUESTION and r["rating"] == "up"]
    assert mine, records
    assert mine[-1]["found"] is True and "1000亿参数" in mine[-1]["answer"]
    assert mine[-1]["chunk_ids"] and mine[-1]["chunk_ids"][0].startswith("report-")


def test_keyboard_only_use(page, medrag_server):
    page.goto(medrag_server.url + "/")
    launcher = page.get_by_role("button", name="打开问答助手")
    for _ in range(5):  # past the page's own focusable elements (its scrollable code block)
        page.keyboard.press("Tab")
        if launcher.evaluate("button => button.getRootNode().activeElement === button"):
            break
    expect(launcher).to_be_focused()
    expect(launcher).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="医学问答助手")
    expect(dialog).to_be_visible()
    expect(page.get_by_role("textbox", name="问题")).to_be_focused()
    expect(page.get_by_role("log", name="对话记录")).to_be_visible()
    page.keyboard.type(QUESTION)
    page.keyboard.press("Enter")
    expect(page.locator("medrag-chat [aria-busy]")).to_have_count(0, timeout=30_000)
    badge = page.get_by_role("button", name="来源 1")
    badge.focus()
    page.keyboard.press("Enter")
    expect(badge).to_have_attribute("aria-expanded", "true")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    closed = page.get_by_role("button", name="打开问答助手")
    expect(closed).to_be_focused()
    expect(closed).to_have_attribute("aria-expanded", "false")


def test_a_question_the_server_refuses_shows_its_reason(page, medrag_server):
    page.goto(medrag_server.url + "/")
    open_widget(page)
    message = ask(page, "问" * 501)
    expect(message).to_have_class("msg bot error")
    expect(message).to_contain_text("服务出错：the question has 501 characters; the limit is 500")


def test_a_follow_up_question_is_asked_with_the_conversation(page, medrag_server):
    page.goto(medrag_server.url + "/")
    open_widget(page)
    first = ask(page, "MedGPT是哪家公司发布的？")
    expect(first.locator(".answer")).to_contain_text("医联")
    with page.expect_request("**/ask/stream") as sent:
        follow_up = ask(page, "它有多少参数？")
    history = sent.value.post_data_json["history"]
    assert history[0] == {"role": "user", "content": "MedGPT是哪家公司发布的？"}
    assert history[1]["role"] == "assistant" and "医联" in history[1]["content"]
    expect(follow_up.locator(".answer")).to_contain_text("1000亿参数")


def test_the_quote_is_marked_in_its_passage_and_linked_at_its_place_in_the_document(page, medrag_server, artifacts):
    question = "青岚医院每天为多少偏远地区患者看诊？"
    expected = httpx.post(f"{medrag_server.url}/ask", json={"question": question}, timeout=60).json()
    [citation] = expected["citations"]
    quote = citation["quote"]
    assert quote["text"] == "青岚医院于2030年开通远程会诊，每天为二百名偏远地区患者看诊。"
    assert citation["url"] == QINGLAN_URL and citation["deep_link"].startswith(QINGLAN_URL + "#:~:text=")
    page.goto(medrag_server.url + "/")
    open_widget(page)
    message = ask(page, question)
    message.locator(".badge").first.click()
    region = message.get_by_role("region", name="来源 1")
    expect(region.locator("mark.quote")).to_have_text(quote["text"])
    expect(region.locator("mark")).to_have_count(1)
    passage = region.locator("blockquote").text_content()
    assert passage == citation["text"] and passage[quote["passage_start"] : quote["passage_end"]] == quote["text"]
    link = region.get_by_role("link", name=re.compile("^定位原文"))
    expect(link).to_have_attribute("href", citation["deep_link"])
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(region.get_by_role("link", name=re.compile("^文档原文"))).to_have_attribute("href", QINGLAN_URL)
    page.screenshot(path=artifacts / "widget-quote.png")


@pytest.mark.parametrize("scenario, quoted", [("quote", ["第二句。"]), ("misplaced-quote", [])])
def test_a_quote_is_marked_by_its_offsets_only_where_they_hold_and_deep_links_must_be_http(
    page, site, scenario, quoted
):
    page.goto(f"{site.url}/scripted?scenario={scenario}&open=true")
    message = ask(page, "第一句是什么？")
    message.locator(".badge").first.click()
    region = message.get_by_role("region", name="来源 1")
    expect(region.locator("mark.quote")).to_have_text(quoted)
    expect(region.locator("mark")).to_have_text(["第一句。", *quoted])  # the answer's own sentence, as before
    expect(region.get_by_role("link")).to_have_count(1)  # the article's; never the javascript: deep link
    assert page.evaluate("window.medragPwned") is None


def test_a_pdf_citation_shows_its_page_and_links_to_it(page, site):
    page.goto(f"{site.url}/scripted?scenario=paged&open=true")
    message = ask(page, "第一句是什么？")
    message.locator(".badge").first.click()
    region = message.get_by_role("region", name="来源 1")
    expect(region.locator(".cite-section")).to_have_text("章节：讨论 · 第 2 页")
    link = region.get_by_role("link", name=re.compile("^定位原文"))
    expect(link).to_have_attribute("href", "https://example.org/report.pdf#page=2")
