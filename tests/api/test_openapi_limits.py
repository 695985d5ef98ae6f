"""The OpenAPI document states the limits the service checks, from the settings it runs with."""

import re

from medrag.api.app import HTTP_URL, NOT_BLANK, create_app
from medrag.settings import Settings


def test_the_document_states_the_question_and_upload_limits_of_the_settings(tmp_path):
    settings = Settings(index_dir=tmp_path, max_question_chars=100, max_history_turns=7, max_upload_files=3)
    document = create_app(settings).openapi()
    schemas = document["components"]["schemas"]
    question = schemas["AskRequest"]["properties"]["question"]
    assert (question["minLength"], question["maxLength"], question["pattern"]) == (1, 100, NOT_BLANK)
    assert schemas["AskRequest"]["properties"]["history"]["maxItems"] == 7
    assert schemas["ChatRequest"]["properties"]["messages"]["maxItems"] == 8
    (q,) = [p for p in document["paths"]["/search"]["get"]["parameters"] if p["name"] == "q"]
    assert q["schema"]["maxLength"] == 100
    body = document["paths"]["/documents"]["post"]["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["properties"]["files"]["maxItems"] == 3
    assert len(body["application/json"]["schema"]["anyOf"]) == 2


def test_the_patterns_match_what_the_service_accepts():
    # str.strip's whitespace, which JSON Schema's \s lacks in part, is blank too.
    assert not any(re.search(NOT_BLANK, text) for text in ("", " \u3000", "\x1c\x1f\x85\n"))
    assert re.search(NOT_BLANK, " MedGPT ")
    assert all(re.search(HTTP_URL, url) for url in ("http://a.example", "https://x-1.org:8080/p?q=1#f"))
    assert not any(re.search(HTTP_URL, url) for url in ("", "ftp://a", "http://", "http://a b", "http://a:123456"))
