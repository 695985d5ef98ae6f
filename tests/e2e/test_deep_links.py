"""Deep links in Chromium: the text fragment of a citation's deep link scrolls the page to the quoted sentence."""

import pytest

from medrag.deeplinks import deep_link

from ..conftest import LoopbackSite

pytestmark = pytest.mark.slow

SENTENCES = [
    "参数规模：1000亿参数，行业领先。",
    # Long: the directive holds only its first and last words, cut where Chromium sees word boundaries.
    "中国在这一领域的研究和实践近年来取得了显著进展，为医疗行业的智能化和精准化提供了重要支持。",
    "MedGPT由中国互联网医疗公司医联于2023年5月25日正式发布，是国内首款自主研发的医疗大语言模型，被称为“AI医生”。",
    "In 2023 the hospital screened 1,000 patients for type-2 diabetes, and 12.5% of them needed follow-up care.",
    "HIV-1, HBV & HCV tests.",
]
SPACER = '<div style="height:3000px"></div>'
PAGE = (
    '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>Article</title></head><body>'
    '<h1 id="top">Article</h1>'
    + "".join(f"{SPACER}<p>{sentence}</p>" for sentence in SENTENCES)
    + SPACER
    + "</body></html>"
)


@pytest.fixture(scope="module")
def article():
    """The page on a loopback site; its own fragment points at the top, so only the text directive scrolls it."""
    site = LoopbackSite()
    site.routes["/article"] = (200, {"Content-Type": "text/html; charset=utf-8"}, PAGE.encode())
    yield f"{site.url}/article#top"
    site.close()


@pytest.mark.parametrize("sentence", SENTENCES)
def test_the_deep_link_scrolls_to_the_quoted_sentence(browser, article, sentence):
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    page = context.new_page()
    page.goto(deep_link(article, sentence))
    paragraph = page.locator("p", has_text=sentence).element_handle()
    in_view = "p => { const box = p.getBoundingClientRect(); return box.top >= 0 && box.bottom <= innerHeight; }"
    page.wait_for_function(in_view, arg=paragraph, timeout=5_000)
    context.close()
