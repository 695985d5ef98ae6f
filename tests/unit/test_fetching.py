"""The SSRF guard: every refused case makes no connection to its target.

Loopback targets are real servers started here (they count the connections they accept); the
other address classes cannot be used as real targets, so a fake resolver maps names to them and
a recording transport stands in for the network: it must never be asked to connect.
"""

import ipaddress
import socket
import time

import httpx
import pytest

from medrag.errors import FetchFailedError, FetchRefusedError
from medrag.fetching import Fetcher, refusal

LOOPBACK = [ipaddress.ip_network("127.0.0.1/32")]
ARTICLE = (
    "<html><head><title>蓝鲸</title></head><body><article><p>蓝鲸医疗模型由北极星医院发布。</p></article></body></html>"
)


def fetcher(**options) -> Fetcher:
    return Fetcher(max_bytes=options.pop("max_bytes", 100_000), timeout=options.pop("timeout", 5.0), **options)


class Recorder(httpx.BaseTransport):
    """A transport that records what it was asked to connect to, and answers 200."""

    def __init__(self):
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, headers={"content-type": "text/plain"}, content=b"hello")


def resolver_to(*addresses: str):
    calls = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return list(addresses)

    resolve.calls = calls
    return resolve


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/a",
        "file:///etc/passwd",
        "gopher://example.org/",
        "/relative/path",
        "javascript:alert(1)",
        "http://",
    ],
)
def test_only_http_and_https_urls(url):
    recorder = Recorder()
    with pytest.raises(FetchRefusedError):
        fetcher(transport=recorder).fetch(url)
    assert recorder.requests == []


@pytest.mark.parametrize(
    "address, reason",
    [
        ("10.1.2.3", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:10.0.0.1", "IPv4-mapped"),
        ("::ffff:8.8.8.8", "IPv4-mapped"),
        ("192.0.2.10", "private"),  # documentation range
        ("198.18.0.1", "private"),  # benchmarking range
        ("64:ff9b::a00:1", "reserved"),  # NAT64 of 10.0.0.1
    ],
)
def test_names_resolving_to_internal_addresses_are_refused_before_connecting(address, reason):
    recorder = Recorder()
    guard = fetcher(resolver=resolver_to(address), transport=recorder)
    with pytest.raises(FetchRefusedError, match=reason):
        guard.fetch("https://innocent.example/article")
    assert recorder.requests == []


def test_one_internal_address_among_public_ones_is_enough_to_refuse():
    recorder = Recorder()
    guard = fetcher(resolver=resolver_to("93.184.216.34", "10.0.0.7"), transport=recorder)
    with pytest.raises(FetchRefusedError, match="private"):
        guard.fetch("http://mixed.example/")
    assert recorder.requests == []


def test_public_address_is_connected_to_as_checked_with_the_name_in_host_and_sni():
    recorder = Recorder()
    resolve = resolver_to("93.184.216.34")
    fetched = fetcher(resolver=resolve, transport=recorder).fetch("https://news.example:8443/a?b=1")
    assert fetched.body == b"hello" and fetched.url == "https://news.example:8443/a?b=1"
    (request,) = recorder.requests
    assert str(request.url) == "https://93.184.216.34:8443/a?b=1"
    assert request.headers["host"] == "news.example:8443"
    assert request.extensions["sni_hostname"] == "news.example"
    assert resolve.calls == ["news.example"]


def test_refusal_classifies_a_public_address_as_allowed():
    assert refusal(ipaddress.ip_address("93.184.216.34")) is None
    assert refusal(ipaddress.ip_address("2606:4700::1111")) is None


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.1", "[::ffff:127.0.0.1]"])
def test_loopback_server_gets_no_connection(loopback_site, host):
    site = loopback_site()
    site.routes["/"] = (200, {"Content-Type": "text/html"}, ARTICLE.encode())
    with pytest.raises(FetchRefusedError, match="loopback|IPv4-mapped"):
        fetcher().fetch(f"http://{host}:{site.port}/")
    assert site.connections == 0


def test_ipv6_loopback_server_gets_no_connection(loopback_site):
    try:
        site = loopback_site("::1")
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    with pytest.raises(FetchRefusedError, match="loopback"):
        fetcher().fetch(f"http://[::1]:{site.port}/")
    assert site.connections == 0


def test_allow_list_lets_a_loopback_server_through(loopback_site):
    site = loopback_site()
    site.routes["/a"] = (200, {"Content-Type": "text/html; charset=utf-8"}, ARTICLE.encode())
    fetched = fetcher(allow=LOOPBACK).fetch(f"{site.url}/a")
    assert fetched.media_type == "text/html" and fetched.charset == "utf-8"
    assert "蓝鲸" in fetched.body.decode()
    assert site.connections == 1


def test_redirect_to_a_refused_address_is_refused_before_connecting(loopback_site):
    allowed = loopback_site("127.0.0.1")
    hidden = loopback_site("127.0.0.2")
    hidden.routes["/secret"] = (200, {"Content-Type": "text/plain"}, b"internal")
    allowed.routes["/go"] = (302, {"Location": f"{hidden.url}/secret"}, b"")
    with pytest.raises(FetchRefusedError, match="redirected to http://127.0.0.2.*loopback"):
        fetcher(allow=LOOPBACK).fetch(f"{allowed.url}/go")
    assert allowed.connections == 1
    assert hidden.connections == 0


def test_redirect_to_another_scheme_is_refused(loopback_site):
    site = loopback_site()
    site.routes["/go"] = (301, {"Location": "file:///etc/passwd"}, b"")
    with pytest.raises(FetchRefusedError, match="only http and https"):
        fetcher(allow=LOOPBACK).fetch(f"{site.url}/go")


def test_redirects_within_the_allowed_network_are_followed_and_capped(loopback_site):
    site = loopback_site()
    site.routes["/1"] = (302, {"Location": "/2"}, b"")
    site.routes["/2"] = (200, {"Content-Type": "text/plain"}, b"landed")
    fetched = fetcher(allow=LOOPBACK).fetch(f"{site.url}/1")
    assert fetched.body == b"landed" and fetched.final_url == f"{site.url}/2"
    site.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    with pytest.raises(FetchFailedError, match="more than 5 redirects"):
        fetcher(allow=LOOPBACK).fetch(f"{site.url}/loop")


def test_the_checked_address_is_the_one_connected_to(loopback_site):
    """DNS rebinding: the name resolves to an allowed address once, then to another; only the first is used."""
    allowed = loopback_site("127.0.0.1")
    other = loopback_site("127.0.0.2", allowed.port)
    allowed.routes["/"] = (200, {"Content-Type": "text/plain"}, b"checked")
    other.routes["/"] = (200, {"Content-Type": "text/plain"}, b"rebound")
    answers = iter([["127.0.0.1"], ["127.0.0.2"], ["127.0.0.2"]])
    calls = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    fetched = fetcher(allow=LOOPBACK, resolver=rebinding).fetch(f"http://rebind.test:{allowed.port}/")
    assert fetched.body == b"checked"
    assert calls == ["rebind.test"]
    assert other.connections == 0
    assert allowed.requests == [("/", f"rebind.test:{allowed.port}")]


def test_a_page_over_the_size_cap_is_dropped(loopback_site):
    site = loopback_site()
    site.routes["/big"] = (200, {"Content-Type": "text/plain"}, b"x" * 300_000)

    def endless(out):
        for _ in range(10_000):
            out.write(b"y" * 10_000)

    site.routes["/endless"] = (200, {"Content-Type": "text/plain"}, endless)
    with pytest.raises(FetchFailedError, match="300000 bytes; the limit is 100000"):
        fetcher(allow=LOOPBACK).fetch(f"{site.url}/big")
    started = time.monotonic()
    with pytest.raises(FetchFailedError, match="larger than 100000 bytes"):
        fetcher(allow=LOOPBACK).fetch(f"{site.url}/endless")
    assert time.monotonic() - started < 5


def test_a_slow_page_hits_the_deadline(loopback_site):
    site = loopback_site()

    def drip(out):
        for _ in range(100):
            out.write(b"z")
            out.flush()
            time.sleep(0.1)

    site.routes["/slow"] = (200, {"Content-Type": "text/plain"}, drip)
    started = time.monotonic()
    with pytest.raises(FetchFailedError, match="within 1 s"):
        fetcher(allow=LOOPBACK, timeout=1.0).fetch(f"{site.url}/slow")
    assert time.monotonic() - started < 3


def test_http_errors_and_unreachable_hosts_are_clear(loopback_site):
    site = loopback_site()
    with pytest.raises(FetchFailedError, match="HTTP 404"):
        fetcher(allow=LOOPBACK).fetch(f"{site.url}/missing")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(FetchFailedError, match="cannot connect"):
        fetcher(allow=LOOPBACK).fetch(f"http://127.0.0.1:{closed_port}/")
    with pytest.raises(FetchFailedError, match="cannot resolve host no-such-host.invalid"):
        fetcher().fetch("http://no-such-host.invalid/")
