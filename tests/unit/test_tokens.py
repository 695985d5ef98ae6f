"""Read tokens: signed for one knowledge base and one origin, refused when forged, foreign or expired."""

import pytest

from medrag import tokens
from medrag.errors import UnauthorizedError

KEY = b"k" * 32
ORIGIN = "https://clinic.example"


def test_a_minted_token_is_accepted_for_its_knowledge_base_and_origin_until_it_expires():
    token = tokens.mint(KEY, "pharmacy", ORIGIN, expires_at=1000)
    tokens.verify(KEY, token, "pharmacy", ORIGIN, now=999)
    with pytest.raises(UnauthorizedError, match="has expired"):
        tokens.verify(KEY, token, "pharmacy", ORIGIN, now=1000)


@pytest.mark.parametrize(
    ("kb", "origin", "message"),
    [
        ("wards", ORIGIN, "another knowledge base"),
        ("pharmacy", "https://other.example", "another origin"),
        ("pharmacy", None, "another origin"),  # no Origin header at all
    ],
)
def test_a_token_is_refused_for_another_knowledge_base_or_origin(kb, origin, message):
    token = tokens.mint(KEY, "pharmacy", ORIGIN, expires_at=1000)
    with pytest.raises(UnauthorizedError, match=message):
        tokens.verify(KEY, token, kb, origin, now=0)


def test_a_forged_or_malformed_token_is_refused():
    token = tokens.mint(KEY, "pharmacy", ORIGIN, expires_at=1000)
    prefix, claims, signature = token.split(".")
    other = tokens.mint(KEY, "pharmacy", ORIGIN, expires_at=10**12)
    for forged in (
        tokens.mint(b"x" * 32, "pharmacy", ORIGIN, expires_at=1000),  # another server's key
        f"{prefix}.{other.split('.')[1]}.{signature}",  # a later expiry under the old signature
        f"{prefix}.{claims}.{signature[:-1]}A",
        "v2." + token[3:],
        "nonsense",
        "",
        "v1..",
        "v1.%%%.é",
    ):
        with pytest.raises(UnauthorizedError):
            tokens.verify(KEY, forged, "pharmacy", ORIGIN, now=0)
