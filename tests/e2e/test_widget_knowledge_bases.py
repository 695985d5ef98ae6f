"""The widget asking a non-default knowledge base (`data-kb`), and a private one with a read token (`data-token`)."""

import json
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import expect

from .conftest import ADMIN_TOKEN
from .test_widget import ask

pytestmark = pytest.mark.slow


def questions(page, url: str) -> list[dict]:
    """The bodies of the questions the page sends to the service at `url`, as they are sent."""
    sent: list[dict] = []

    def seen(request) -> None:
        if request.url.startswith(url + "/ask"):
            sent.append(json.loads(request.post_data))

    page.on("request", seen)
    return sent


def test_data_kb_asks_that_knowledge_base_and_only_it(page, site, medrag_server):
    sent = questions(page, medrag_server.url)
    page.goto(f"{site.url}/?{urlencode({'kb': 'night-ward', 'open': 'true'})}")
    message = ask(page, "夜班护士在几点交接病房记录？")
    expect(message.locator(".answer")).to_contain_text("七点半")
    message.get_by_role("button", name="来源 1").first.click()
    expect(message.get_by_role("region", name="来源 1")).to_contain_text("夜班护士在早上七点半")
    assert sent and {body["kb"] for body in sent} == {"night-ward"}
    # The shipped documents are not in that knowledge base.
    refused = ask(page, "MedGPT有多少参数？")
    expect(refused.locator(".answer")).not_to_contain_text("1000亿")


def test_a_private_knowledge_base_answers_the_page_its_token_was_minted_for(page, site, medrag_server):
    question = "白桦医院药房的自动发药机每小时能发出多少份处方？"
    page.goto(f"{site.url}/?{urlencode({'kb': 'pharmacy', 'open': 'true'})}")
    refused = ask(page, question)
    expect(refused).to_have_class("msg bot error")
    expect(refused).to_contain_text("private")

    minted = httpx.post(
        f"{medrag_server.url}/kbs/pharmacy/tokens",
        json={"origin": site.url},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert minted.status_code == 201, minted.text
    page.goto(f"{site.url}/?{urlencode({'kb': 'pharmacy', 'open': 'true', 'token': minted.json()['token']})}")
    message = ask(page, question)
    expect(message.locator(".answer")).to_contain_text("600")
