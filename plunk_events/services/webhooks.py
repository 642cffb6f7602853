"""Outgoing HTTP of WEBHOOK steps, guarded against server-side request forgery.

A step's URL is user input rendered with contact data, so it must not reach the host's own
network: cloud metadata at 169.254.169.254, an admin port on localhost, the database. Every hop
of a delivery (redirects included) resolves the host once, refuses it if any address is not
public (unless ``PLUNK_EVENTS["WEBHOOK_ALLOW_PRIVATE_NETWORKS"]`` lists it), then connects to the
address it checked: no second lookup that a DNS-rebinding server could answer differently. The
Host header, TLS SNI and the certificate check keep using the hostname.

Built on requests: its adapter hook for connection-pool attributes pins the pool to the checked
address, and urllib3 takes ``server_hostname``/``assert_hostname`` for TLS.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit

import requests
from django.core.serializers.json import DjangoJSONEncoder
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import NewConnectionError, ReadTimeoutError

from .. import __version__
from ..conf import conf

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Bytes of a response body kept in the result; the rest is not downloaded.
MAX_RESPONSE_BYTES = 10 * 1024
USER_AGENT = f"plunk-events/{__version__} (workflow webhook)"
#: Headers that carry credentials: not forwarded when a redirect leaves the origin.
CREDENTIAL_HEADERS = ("Authorization", "Cookie", "Proxy-Authorization")
DEFAULT_PORTS = {"http": 80, "https": 443}

#: Not public: this host, private networks, shared (CGNAT), documentation, benchmarking,
#: multicast, reserved. Python's ``is_global`` alone misses some (224.0.0.1 is "global").
BLOCKED_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class WebhookError(Exception):
    """A delivery that got no response; the WEBHOOK step fails with this message."""


class WebhookRefused(WebhookError):
    """The target is not allowed: not an http(s) URL, or an address that is not public."""


class WebhookDNSError(WebhookError):
    """The host name does not resolve."""


class WebhookTimeout(WebhookError):
    """The delivery, redirects included, took longer than its timeout."""


class WebhookTooManyRedirects(WebhookError):
    """More redirects than allowed."""


class WebhookConnectionError(WebhookError):
    """No connection, a broken one, or a failed TLS handshake or certificate check."""


@dataclass(frozen=True)
class WebhookResult:
    """The final response: any status, 2xx or not (``success``), is a result, not an error."""

    status_code: int
    success: bool
    #: The body's first :data:`MAX_RESPONSE_BYTES` bytes, decoded.
    response_text: str
    #: The URL that answered (after redirects).
    url: str
    truncated: bool = False

    def response(self) -> Any:
        """The body as Plunk's step output shows it: parsed when it is JSON, else the text."""
        if not self.truncated:
            try:
                return json.loads(self.response_text)
            except ValueError:
                pass
        return self.response_text


# ---------------------------------------------------------------------------------------------
# Which addresses a webhook may reach


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped, IPv4-compatible, 6to4 or
    NAT64 (64:ff9b::/96); None for a plain IPv6 address."""
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(address.packed[-4:])
    return None


def is_blocked_address(address: IPAddress) -> bool:
    """True when ``address`` is not a public unicast address (before the allow-list)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.teredo:  # the tunnelled endpoint is obfuscated: refuse outright
            return True
        embedded = embedded_ipv4(address)
        if embedded is not None:
            return is_blocked_address(embedded)
    return (
        not address.is_global
        or address.is_multicast
        or any(address in network for network in BLOCKED_NETWORKS)
    )


def _allowed_networks() -> list:
    networks = []
    for entry in conf.WEBHOOK_ALLOW_PRIVATE_NETWORKS or ():
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except (TypeError, ValueError):
            continue  # check plunk_events.E012 reports it; an unreadable entry allows nothing
    return networks


def is_allowed_address(address: IPAddress, networks: list | None = None) -> bool:
    """Whether a webhook may connect to ``address``: public, or in an allowed network."""
    if not is_blocked_address(address):
        return True
    networks = _allowed_networks() if networks is None else networks
    candidates = [address]
    if isinstance(address, ipaddress.IPv6Address) and embedded_ipv4(address):
        candidates.append(embedded_ipv4(address))
    return any(candidate in network for candidate in candidates for network in networks)


@dataclass(frozen=True)
class Target:
    """A checked hop: the prepared URL and the addresses that may be connected to."""

    url: str
    parts: SplitResult
    addresses: list[IPAddress]

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.parts.scheme, self.parts.hostname or "", self._port)

    @property
    def _port(self) -> int:
        return self.parts.port or DEFAULT_PORTS[self.parts.scheme]

    @property
    def host_header(self) -> str:
        return self.parts.netloc.rpartition("@")[2]


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _resolve(host: str, port: int) -> list[IPAddress]:
    if _is_literal(host):
        return [ipaddress.ip_address(host)]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise WebhookDNSError(f"Cannot resolve {host}: {exc}") from exc
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            address = ipaddress.ip_address(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        raise WebhookDNSError(f"Cannot resolve {host}: no IP address")
    return addresses


def check_target(url: str) -> Target:
    """Refuse ``url`` unless it is http(s) and every address of its host may be reached."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as exc:
        raise WebhookRefused(f"Not a valid URL: {url!r}") from exc
    if scheme not in DEFAULT_PORTS:
        raise WebhookRefused(f"Only http and https URLs are allowed, not {scheme or 'no'} scheme")
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)  # IDNA-encodes the host, quotes the path
        parts = urlsplit(prepared.url)
        port = parts.port or DEFAULT_PORTS[scheme]
    except (requests.RequestException, ValueError, UnicodeError) as exc:
        raise WebhookRefused(f"Not a valid URL: {url!r}") from exc
    host = parts.hostname
    if not host:
        raise WebhookRefused(f"Not a valid URL: {url!r}")
    addresses = _resolve(host, port)
    networks = _allowed_networks()
    for address in addresses:
        if not is_allowed_address(address, networks):
            shown = host if _is_literal(host) else f"{host} resolves to {address}"
            raise WebhookRefused(
                f"{shown}, a private, loopback, link-local, multicast or reserved "
                "address: webhooks may reach public addresses only (see "
                "PLUNK_EVENTS['WEBHOOK_ALLOW_PRIVATE_NETWORKS'])"
            )
    return Target(prepared.url, parts, addresses)


# ---------------------------------------------------------------------------------------------
# Delivery


class _PinnedAdapter(HTTPAdapter):
    """Connects to the checked address, whatever the URL's host would resolve to now."""

    def __init__(self, address: IPAddress, hostname: str) -> None:
        self.address = f"[{address}]" if address.version == 6 else str(address)
        self.hostname = hostname
        super().__init__(max_retries=0)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        host_params["host"] = self.address
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = self.hostname
            pool_kwargs["assert_hostname"] = self.hostname
        return host_params, pool_kwargs


def _remaining(deadline: float, timeout: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise WebhookTimeout(f"No complete response within {timeout:g} s")
    return left


def _failure(exc: requests.RequestException, target: Target, timeout: float) -> WebhookError:
    reason = exc.args[0] if exc.args else exc
    reason = getattr(reason, "reason", reason)
    if isinstance(exc, requests.Timeout) or isinstance(reason, ReadTimeoutError):
        return WebhookTimeout(
            f"No complete response from {target.host_header} within {timeout:g} s"
        )
    if isinstance(exc, requests.exceptions.InvalidHeader):
        return WebhookError(f"Invalid header: {exc}")
    kind = "TLS with" if isinstance(exc, requests.exceptions.SSLError) else "Connection to"
    text = str(reason)
    if isinstance(reason, NewConnectionError):  # "HTTPConnection(host=…, port=…): <why>"
        text = text.partition(": ")[2] or text
    return WebhookConnectionError(f"{kind} {target.host_header} failed: {text}")


def _connect_failed(exc: requests.RequestException) -> bool:
    """Nothing was sent: the next address of the host may be tried."""
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return isinstance(exc, requests.ConnectTimeout) or isinstance(reason, NewConnectionError)


def _read(response: requests.Response, deadline: float, timeout: float) -> tuple[str, bool]:
    body = bytearray()
    for chunk in response.iter_content(chunk_size=4096):
        _remaining(deadline, timeout)
        body += chunk
        if len(body) > MAX_RESPONSE_BYTES:
            break
    encoding = response.encoding or "utf-8"
    try:
        text = bytes(body[:MAX_RESPONSE_BYTES]).decode(encoding, errors="replace")
    except LookupError:
        text = bytes(body[:MAX_RESPONSE_BYTES]).decode("utf-8", errors="replace")
    return text, len(body) > MAX_RESPONSE_BYTES


def _hop(target, method, headers, payload, deadline, timeout, verify):
    """One request to ``target``: a WebhookResult, or ``(status, location)`` to follow."""
    headers = CaseInsensitiveDict(headers)
    headers["Host"] = target.host_header
    failure: requests.RequestException | None = None
    for address in target.addresses:
        left = _remaining(deadline, timeout)
        with requests.Session() as session:
            session.trust_env = False  # no proxy from the environment: it would connect for us
            adapter = _PinnedAdapter(address, target.parts.hostname or "")
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            try:
                response = session.request(
                    method,
                    target.url,
                    headers=headers,
                    data=payload,
                    timeout=(left, left),
                    allow_redirects=False,
                    stream=True,
                    verify=verify,
                    proxies={},
                )
            except requests.RequestException as exc:
                if _connect_failed(exc):
                    failure = exc
                    continue
                raise _failure(exc, target, timeout) from exc
            with response:
                location = response.headers.get("Location")
                if response.status_code in REDIRECT_STATUSES and location:
                    return response.status_code, location
                try:
                    text, truncated = _read(response, deadline, timeout)
                except requests.RequestException as exc:
                    raise _failure(exc, target, timeout) from exc
                return WebhookResult(
                    status_code=response.status_code,
                    success=200 <= response.status_code < 300,
                    response_text=text,
                    url=target.url,
                    truncated=truncated,
                )
    # Every address refused the connection (a host always has one address at least).
    raise _failure(failure, target, timeout) from failure


def _redirected(status: int, method: str, payload: bytes | None):
    """Fetch's rule: 303 turns into GET, 301/302 turn a POST into GET; 307/308 resend as is."""
    if (status == 303 and method != "GET") or (status in (301, 302) and method == "POST"):
        return "GET", None
    return method, payload


def deliver(
    url: str,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    body: Any = None,
    idempotency_key: str,
    timeout: float = 10.0,
    max_redirects: int = 5,
    verify: bool | str = True,
) -> WebhookResult:
    """Send a WEBHOOK step's request and return the final response, whatever its status.

    ``body`` is sent as JSON (none for GET or None). ``Idempotency-Key`` goes on every request,
    retries and redirects included, so a receiver can drop a repeated delivery. ``timeout``
    bounds the whole delivery; ``verify`` may name a CA bundle (private CAs, tests). Raises a
    :class:`WebhookError` subclass when there is no response to report.
    """
    method = method.upper()
    if method not in METHODS:
        raise WebhookError(f"Method {method} is not one of {', '.join(METHODS)}")
    deadline = time.monotonic() + timeout
    sent = CaseInsensitiveDict({"User-Agent": USER_AGENT, "Accept": "*/*"})
    sent.update(headers or {})
    sent["Idempotency-Key"] = idempotency_key
    payload = None
    if method != "GET" and body is not None:
        text = json.dumps(body, cls=DjangoJSONEncoder, ensure_ascii=False, separators=(",", ":"))
        payload = text.encode()
        sent.setdefault("Content-Type", "application/json")
    target = check_target(url)
    for redirects in range(max_redirects + 1):
        answer = _hop(target, method, sent, payload, deadline, timeout, verify)
        if isinstance(answer, WebhookResult):
            return answer
        if redirects == max_redirects:
            break
        status, location = answer
        method, payload = _redirected(status, method, payload)
        if payload is None:
            sent.pop("Content-Type", None)
        following = check_target(urljoin(target.url, location))
        if following.origin != target.origin:
            for name in CREDENTIAL_HEADERS:
                sent.pop(name, None)
        target = following
    raise WebhookTooManyRedirects(f"More than {max_redirects} redirects (stopped at {target.url})")
