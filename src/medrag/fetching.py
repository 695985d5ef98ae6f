"""Fetch a URL for indexing without letting it reach internal services (the SSRF guard).

Every hop, the first and each redirect, is checked the same way: the scheme must be http or
https; the host is resolved once and every address it resolves to must be public (not loopback,
private, link-local, CGNAT, multicast, reserved, unspecified or IPv4-mapped IPv6) unless it lies
in an allowed network; the connection then goes to the address that was checked, never to a
second resolution of the name, so a DNS answer that changes between check and use gains nothing.
The body is streamed and dropped past a size cap, and the whole fetch has a deadline.
"""

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from .errors import FetchFailedError, FetchRefusedError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

SCHEMES = ("http", "https")
MAX_REDIRECTS = 5
CGNAT = ipaddress.ip_network("100.64.0.0/10")
USER_AGENT = "medrag/0.1 (document ingestion)"


@dataclass(frozen=True)
class Fetched:
    """A fetched response body with where it finally came from and its declared type."""

    url: str
    final_url: str
    media_type: str
    charset: str | None
    body: bytes


def resolve(host: str, port: int) -> list[str]:
    """Every address the host name resolves to."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise FetchFailedError(f"cannot resolve host {host}: {getattr(error, 'strerror', None) or error}") from error
    return list(dict.fromkeys(info[4][0] for info in infos))


def refusal(address: Address) -> str | None:
    """Why the guard refuses an address, or None when it is a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return "an IPv4-mapped IPv6 address"
    checks = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.version == 4 and address in CGNAT, "a carrier-grade NAT (CGNAT) address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a globally routable address"),
    )
    return next((reason for refused, reason in checks if refused), None)


def check_scheme(url: str) -> httpx.URL:
    """The parsed URL, when it is a well-formed http or https URL with a host."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as error:
        raise FetchRefusedError(f"{url}: not a valid URL ({error})") from error
    if parsed.scheme not in SCHEMES:
        raise FetchRefusedError(
            f"{url}: only http and https URLs can be fetched, not {parsed.scheme or 'a relative URL'}"
        )
    if not parsed.host:
        raise FetchRefusedError(f"{url}: the URL has no host")
    return parsed


class Fetcher:
    """Fetches http(s) URLs through the SSRF guard; `allow` lists networks the guard lets through."""

    def __init__(
        self,
        *,
        max_bytes: int,
        timeout: float,
        allow: Iterable[Network] = (),
        resolver: Resolver = resolve,
        transport: httpx.BaseTransport | None = None,
    ):
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.allow = tuple(allow)
        self.resolver = resolver
        self.transport = transport

    def address_for(self, url: httpx.URL) -> str:
        """The one address to connect to for this URL, after checking all the host's addresses."""
        try:
            literal = ipaddress.ip_address(url.host)
            candidates = [literal]
        except ValueError:
            port = url.port or (443 if url.scheme == "https" else 80)
            candidates = [ipaddress.ip_address(a.split("%")[0]) for a in self.resolver(url.host, port)]
        if not candidates:
            raise FetchFailedError(f"the host {url.host} has no address")
        for address in candidates:
            if any(address in network for network in self.allow if network.version == address.version):
                continue
            reason = refusal(address)
            if reason:
                shown = url.host if str(address) == url.host else f"{url.host} ({address})"
                raise FetchRefusedError(
                    f"refused to fetch {shown}: {reason}; "
                    f"only public addresses are fetched (MEDRAG_FETCH_ALLOW lists exceptions)"
                )
        return str(candidates[0])

    def fetch(self, url: str) -> Fetched:
        """GET the URL, following up to MAX_REDIRECTS redirects, each hop checked again."""
        deadline = time.monotonic() + self.timeout
        current = check_scheme(url)
        with httpx.Client(transport=self.transport, trust_env=False, follow_redirects=False) as client:
            for hop in range(MAX_REDIRECTS + 1):
                where = f"{url}: redirected to {current}" if hop else url
                try:
                    address = self.address_for(current)
                except (FetchRefusedError, FetchFailedError) as error:
                    raise type(error)(f"{where}: {error}") from error
                # The request goes to the checked address; the name travels in Host and in TLS SNI,
                # so virtual hosting and certificate checks still work.
                pinned = current.copy_with(host=address)
                extensions = {"sni_hostname": current.host} if current.scheme == "https" else {}
                request = client.build_request(
                    "GET",
                    pinned,
                    headers={"Host": current.netloc.decode("ascii"), "User-Agent": USER_AGENT},
                    extensions=extensions,
                    timeout=self._remaining(deadline, url),
                )
                try:
                    response = client.send(request, stream=True)
                except httpx.TimeoutException as error:
                    raise FetchFailedError(f"{url}: no answer within {self.timeout:g} s") from error
                except httpx.HTTPError as error:
                    raise FetchFailedError(f"{url}: cannot connect to {current.host}: {error}") from error
                try:
                    if response.is_redirect:
                        try:
                            current = check_scheme(str(current.join(response.headers["location"])))
                        except httpx.InvalidURL as error:
                            raise FetchFailedError(f"{url}: redirected to an invalid URL ({error})") from error
                        except FetchRefusedError as error:
                            raise FetchRefusedError(f"{url}: redirected to {error}") from error
                        continue
                    if response.status_code >= 400:
                        raise FetchFailedError(f"{url}: the server answered HTTP {response.status_code}")
                    body = self._read(response, deadline, url)
                    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                    return Fetched(
                        url=url,
                        final_url=str(current),
                        media_type=media_type,
                        charset=response.charset_encoding,
                        body=body,
                    )
                finally:
                    response.close()
        raise FetchFailedError(f"{url}: more than {MAX_REDIRECTS} redirects")

    def _read(self, response: httpx.Response, deadline: float, url: str) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchFailedError(
                f"{url}: the page has {declared} bytes; the limit is {self.max_bytes} (MEDRAG_FETCH_MAX_BYTES)"
            )
        body = bytearray()
        try:
            for piece in response.iter_bytes():
                body += piece
                if len(body) > self.max_bytes:
                    raise FetchFailedError(
                        f"{url}: the page is larger than {self.max_bytes} bytes (MEDRAG_FETCH_MAX_BYTES)"
                    )
                self._remaining(deadline, url)
        except httpx.TimeoutException as error:
            raise FetchFailedError(f"{url}: no answer within {self.timeout:g} s") from error
        except httpx.HTTPError as error:
            raise FetchFailedError(f"{url}: the download failed: {error}") from error
        return bytes(body)

    def _remaining(self, deadline: float, url: str) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchFailedError(f"{url}: not fetched within {self.timeout:g} s (MEDRAG_FETCH_TIMEOUT)")
        return left
