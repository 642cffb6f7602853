"""WEBHOOK delivery (``services/webhooks.py``) against real HTTP servers on 127.0.0.1 (let
through by ``WEBHOOK_ALLOW_PRIVATE_NETWORKS``), and the SSRF guard, which refuses a target
before connecting, so its tests need no network.

Only the resolver (``socket.getaddrinfo``, not our code) is patched, where a test needs a host
name to answer with chosen addresses: DNS rebinding, TLS to a named host, multi-address hosts.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote

import pytest

from plunk_events.services.webhooks import (
    MAX_RESPONSE_BYTES,
    WebhookConnectionError,
    WebhookDNSError,
    WebhookError,
    WebhookRefused,
    WebhookTimeout,
    WebhookTooManyRedirects,
    deliver,
    is_allowed_address,
    is_blocked_address,
)

KEY = "0f8fad5b-d9cb-469f-a165-70867728950e"


@dataclass
class Received:
    method: str
    path: str
    headers: Message
    body: bytes


class Handler(BaseHTTPRequestHandler):
    """``/redirect/<status>?to=<url>``, ``/chain/<n>`` (n redirects to come), ``/status/<code>``,
    ``/slow?s=<seconds>``, ``/big``; anything else answers ``{"ok": true}``."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.received.append(Received(self.command, self.path, self.headers, body))
        path, _, query = self.path.partition("?")
        params = {key: values[0] for key, values in parse_qs(query).items()}
        kind, _, arg = path.strip("/").partition("/")
        if kind == "redirect":
            self.answer(int(arg), headers=[("Location", params["to"])])
        elif kind == "chain" and int(arg) > 0:
            self.answer(302, headers=[("Location", f"/chain/{int(arg) - 1}")])
        elif kind == "status":
            self.answer(int(arg), f"status {arg}".encode(), [("Content-Type", "text/plain")])
        elif kind == "slow":
            time.sleep(float(params.get("s", 3)))
            self.answer(200, b"late")
        elif kind == "big":
            self.answer(200, b"x" * (5 * MAX_RESPONSE_BYTES), [("Content-Type", "text/plain")])
        else:
            self.answer(200, b'{"ok": true}', [("Content-Type", "application/json")])

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


class Server:
    def __init__(self, host="127.0.0.1", tls: ssl.SSLContext | None = None):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("S", (ThreadingHTTPServer,), {"address_family": family})
        self.httpd = server_class((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.received = []
        self.sni: list[str | None] = []
        scheme = "http"
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.sni.append(name)
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.port = self.httpd.server_address[1]
        self.origin = f"{scheme}://{f'[{host}]' if family == socket.AF_INET6 else host}:{self.port}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def received(self) -> list[Received]:
        return self.httpd.received

    def url(self, path="/hook"):
        return self.origin + path

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def allow(settings):
    def allow_networks(*networks):
        settings.PLUNK_EVENTS = {
            **settings.PLUNK_EVENTS,
            "WEBHOOK_ALLOW_PRIVATE_NETWORKS": list(networks),
        }

    allow_networks("127.0.0.1/32")
    return allow_networks


@pytest.fixture
def server(allow):
    running = Server()
    yield running
    running.close()


@pytest.fixture
def other_server(allow):
    running = Server()
    yield running
    running.close()


@pytest.fixture
def resolver(monkeypatch):
    """Answer chosen host names with chosen addresses (one list per call, the last repeats);
    every other name goes to the real resolver. ``calls`` counts lookups per name."""
    real = socket.getaddrinfo
    answers: dict[str, list[list[str]]] = {}
    calls: dict[str, int] = {}

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in answers:
            return real(host, port, family, type, proto, flags)
        calls[name] = calls.get(name, 0) + 1
        addresses = answers[name][min(calls[name], len(answers[name])) - 1]
        result = []
        for address in addresses:
            ip = ipaddress.ip_address(address)
            af = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            sockaddr = (address, port, 0, 0) if ip.version == 6 else (address, port)
            result.append((af, socket.SOCK_STREAM, 6, "", sockaddr))
        return result

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    getaddrinfo.answers = answers
    getaddrinfo.calls = calls
    return getaddrinfo


# ---------------------------------------------------------------------------------------------
# What arrives


def test_json_body_and_headers_arrive(server):
    result = deliver(
        server.url("/hook?x=1"),
        headers={"X-Token": "abc", "User-Agent": "custom"},
        body={"contact": {"email": "ada@example.com"}, "name": "Zoë", "n": 1.5},
        idempotency_key=KEY,
    )
    assert result.status_code == 200
    assert result.success is True
    assert result.response() == {"ok": True}
    assert result.url == server.url("/hook?x=1")
    [request] = server.received
    assert (request.method, request.path) == ("POST", "/hook?x=1")
    assert json.loads(request.body) == {
        "contact": {"email": "ada@example.com"},
        "name": "Zoë",
        "n": 1.5,
    }
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == KEY
    assert request.headers["X-Token"] == "abc"
    assert request.headers["User-Agent"] == "custom"
    assert request.headers["Host"] == f"127.0.0.1:{server.port}"


def test_defaults_name_plunk_events_and_keep_our_idempotency_key(server):
    deliver(server.url(), headers={"idempotency-key": "theirs"}, body={}, idempotency_key=KEY)
    [request] = server.received
    assert request.headers["User-Agent"].startswith("plunk-events/")
    assert request.headers.get_all("Idempotency-Key") == [KEY]


def test_get_has_no_body(server):
    deliver(server.url(), method="get", body={"ignored": True}, idempotency_key=KEY)
    [request] = server.received
    assert (request.method, request.body) == ("GET", b"")
    assert "Content-Type" not in request.headers
    assert request.headers["Idempotency-Key"] == KEY


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_other_methods_carry_the_body(server, method):
    deliver(server.url(), method=method, body=[1, "two"], idempotency_key=KEY)
    [request] = server.received
    assert (request.method, json.loads(request.body)) == (method, [1, "two"])


def test_a_non_2xx_status_is_a_result(server):
    result = deliver(server.url("/status/503"), body={}, idempotency_key=KEY)
    assert (result.status_code, result.success) == (503, False)
    assert result.response() == "status 503"
    unfollowable = deliver(server.url("/status/300"), body={}, idempotency_key=KEY)
    assert (unfollowable.status_code, unfollowable.success) == (300, False)


def test_a_long_response_is_truncated(server):
    result = deliver(server.url("/big"), body={}, idempotency_key=KEY)
    assert len(result.response_text) == MAX_RESPONSE_BYTES
    assert result.truncated is True
    assert result.response() == "x" * MAX_RESPONSE_BYTES


def test_an_unknown_method_is_an_error(server):
    with pytest.raises(WebhookError, match="Method TRACE is not one of"):
        deliver(server.url(), method="TRACE", idempotency_key=KEY)
    assert server.received == []


def test_a_header_value_with_a_line_break_is_an_error(server):
    with pytest.raises(WebhookError, match="Invalid header"):
        deliver(server.url(), headers={"X-A": "ok\r\nX-Injected: 1"}, idempotency_key=KEY)
    assert server.received == []


# ---------------------------------------------------------------------------------------------
# Redirects


def redirect(server, status, to):
    return server.url(f"/redirect/{status}?to={quote(to, safe='')}")


@pytest.mark.parametrize(
    ("status", "method", "then"),
    [
        (302, "POST", "GET"),
        (301, "POST", "GET"),
        (303, "POST", "GET"),
        (303, "PUT", "GET"),
        (301, "PUT", "PUT"),
        (307, "POST", "POST"),
        (308, "PATCH", "PATCH"),
    ],
)
def test_redirects_are_followed_like_a_browser(server, status, method, then):
    result = deliver(
        redirect(server, status, "/final"), method=method, body={"a": 1}, idempotency_key=KEY
    )
    assert (result.status_code, result.url) == (200, server.url("/final"))
    first, second = server.received
    assert (second.method, second.path) == (then, "/final")
    if then == "GET":
        assert second.body == b""
        assert "Content-Type" not in second.headers
    else:
        assert json.loads(second.body) == {"a": 1}
        assert second.headers["Content-Type"] == "application/json"
    assert second.headers["Idempotency-Key"] == KEY


def test_five_redirects_are_followed_and_a_sixth_is_refused(server):
    assert deliver(server.url("/chain/5"), body={}, idempotency_key=KEY).status_code == 200
    assert len(server.received) == 6
    with pytest.raises(WebhookTooManyRedirects, match="More than 5 redirects"):
        deliver(server.url("/chain/6"), body={}, idempotency_key=KEY)
    with pytest.raises(WebhookTooManyRedirects, match="More than 1 redirects"):
        deliver(server.url("/chain/2"), body={}, idempotency_key=KEY, max_redirects=1)


@pytest.mark.parametrize(
    "to",
    [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.2/",  # loopback, but not in the allowed 127.0.0.1/32
        "http://[::ffff:a9fe:a9fe]/",
        "http://[::1]/",
        "file:///etc/passwd",
    ],
)
def test_every_redirect_is_checked_again(server, to):
    with pytest.raises(WebhookRefused):
        deliver(redirect(server, 302, to), body={}, idempotency_key=KEY)
    assert len(server.received) == 1


def test_credentials_stay_with_their_origin(server, other_server):
    headers = {"Authorization": "Bearer s3cret", "Cookie": "a=b", "X-Other": "kept"}
    deliver(redirect(server, 307, "/same"), headers=headers, body={}, idempotency_key=KEY)
    assert server.received[1].headers["Authorization"] == "Bearer s3cret"
    deliver(
        redirect(server, 307, other_server.url("/x")), headers=headers, body={}, idempotency_key=KEY
    )
    [moved] = other_server.received
    assert moved.headers["Authorization"] is None
    assert moved.headers["Cookie"] is None
    assert moved.headers["X-Other"] == "kept"
    assert moved.headers["Idempotency-Key"] == KEY


# ---------------------------------------------------------------------------------------------
# Failures without a response


def test_a_slow_server_times_out(server):
    started = time.monotonic()
    with pytest.raises(WebhookTimeout, match="within 0.5 s"):
        deliver(server.url("/slow?s=3"), body={}, idempotency_key=KEY, timeout=0.5)
    assert time.monotonic() - started < 2


def test_the_timeout_covers_the_whole_delivery(server):
    with pytest.raises(WebhookTimeout):
        deliver(redirect(server, 302, "/slow?s=3"), body={}, idempotency_key=KEY, timeout=0.5)


def test_a_closed_port_is_a_connection_error(allow):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        WebhookConnectionError, match=f"Connection to 127.0.0.1:{port} failed: .*Connection refused"
    ):
        deliver(f"http://127.0.0.1:{port}/", body={}, idempotency_key=KEY)


def test_an_unknown_host_is_a_dns_error():
    with pytest.raises(WebhookDNSError, match="Cannot resolve nothing.invalid"):
        deliver("http://nothing.invalid/hook", body={}, idempotency_key=KEY)


# ---------------------------------------------------------------------------------------------
# The SSRF guard

BLOCKED = [
    "0.0.0.0",
    "0.1.2.3",
    "10.1.2.3",
    "100.64.0.1",
    "100.127.255.254",
    "127.0.0.1",
    "127.255.255.254",
    "169.254.169.254",
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.8",
    "192.0.2.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "0:0:0:0:0:0:0:1",
    "fe80::1",
    "febf::1",
    "fec0::1",
    "fc00::1",
    "fd00::2",
    "ff02::1",
    "100::1",
    "2001:db8::1",
    "64:ff9b:1::1",
    "2001:0:4136:e378:8000:63bf:5600:fedd",  # Teredo
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:a9fe:a9fe",  # 169.254.169.254
    "0:0:0:0:0:ffff:169.254.169.254",
    "::169.254.169.254",  # IPv4-compatible
    "::127.0.0.1",
    "2002:a9fe:a9fe::",  # 6to4
    "2002:7f00:1::1",
    "2002:a00:1::",
    "64:ff9b::a9fe:a9fe",  # NAT64
    "64:ff9b::7f00:1",
]
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "172.15.0.1",
    "172.32.0.1",
    "100.63.0.1",
    "100.128.0.1",
    "93.184.216.34",
    "2606:4700:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "2002:808:808::",
    "64:ff9b::808:808",
]


@pytest.mark.parametrize("address", BLOCKED)
def test_blocked_addresses(address):
    assert is_blocked_address(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address):
    assert is_blocked_address(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize("address", BLOCKED)
def test_literal_targets_are_refused_before_connecting(address):
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(WebhookRefused, match=f"^{re.escape(address)}, a private"):
        deliver(f"http://{host}:8080/hook", body={}, idempotency_key=KEY)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/",
        "http://LocalHost/",
        "http://2130706433/",  # 127.0.0.1 spelled as one number
        "http://0x7f000001/",
        "http://127.1/",
        "https://localhost:443/",
    ],
)
def test_host_names_and_odd_spellings_are_refused_after_resolving(url):
    with pytest.raises(WebhookRefused, match="resolves to 127.0.0.1, a private"):
        deliver(url, body={}, idempotency_key=KEY)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://x/",
        "javascript:alert(1)",
        "//x/",
        "http://",
        "http://[::1/",
    ],
)
def test_only_http_urls_are_accepted(url):
    with pytest.raises(WebhookRefused):
        deliver(url, body={}, idempotency_key=KEY)


def test_a_host_is_refused_if_any_of_its_addresses_is(resolver):
    resolver.answers["mixed.test"] = [["93.184.216.34", "10.0.0.1"]]
    with pytest.raises(WebhookRefused, match="mixed.test resolves to 10.0.0.1"):
        deliver("http://mixed.test/", body={}, idempotency_key=KEY)


def test_the_allow_list_is_exact(allow):
    allow("10.1.2.0/24", "fd00::/8")
    assert is_allowed_address(ipaddress.ip_address("10.1.2.200"))
    assert not is_allowed_address(ipaddress.ip_address("10.1.3.1"))
    assert is_allowed_address(ipaddress.ip_address("fd00::2"))
    assert is_allowed_address(ipaddress.ip_address("::ffff:10.1.2.3"))  # the same IPv4 host
    assert not is_allowed_address(ipaddress.ip_address("127.0.0.1"))
    allow("not a network")
    assert not is_allowed_address(ipaddress.ip_address("10.1.2.200"))


def test_the_connection_goes_to_the_checked_address(server, resolver):
    """DNS rebinding: the host answers an allowed address to the check, then another one."""
    resolver.answers["rebind.test"] = [["127.0.0.1"], ["192.0.2.1"]]
    result = deliver(
        f"http://rebind.test:{server.port}/hook", body={}, idempotency_key=KEY, timeout=3
    )
    assert result.status_code == 200
    assert resolver.calls["rebind.test"] == 1
    [request] = server.received
    assert request.headers["Host"] == f"rebind.test:{server.port}"
    # A redirect is a new hop: resolved and checked again, now answering the other address.
    with pytest.raises(WebhookRefused, match="rebind.test resolves to 192.0.2.1"):
        deliver(
            redirect(server, 302, f"http://rebind.test:{server.port}/"),
            body={},
            idempotency_key=KEY,
        )


def test_the_next_address_is_tried_when_one_refuses_connections(server, resolver, allow):
    allow("127.0.0.0/29")
    resolver.answers["two.test"] = [["127.0.0.3", "127.0.0.1"]]
    result = deliver(f"http://two.test:{server.port}/", body={}, idempotency_key=KEY)
    assert result.status_code == 200
    assert len(server.received) == 1


@pytest.fixture
def ipv6_server(allow):
    try:
        running = Server("::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    allow("::1/128")
    yield running
    running.close()


def test_an_allowed_ipv6_address_is_reached(ipv6_server):
    result = deliver(ipv6_server.url(), body={"v": 6}, idempotency_key=KEY)
    assert result.status_code == 200
    [request] = ipv6_server.received
    assert request.headers["Host"] == f"[::1]:{ipv6_server.port}"


# ---------------------------------------------------------------------------------------------
# TLS: connected to the checked address, verified for the host name


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A test CA and a certificate for ``hooks.test`` signed by it."""
    directory: Path = tmp_path_factory.mktemp("tls")
    try:
        openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=plunk-events test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=directory,
        )  # fmt: skip
        openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr",
            "-subj", "/CN=hooks.test",
            cwd=directory,
        )  # fmt: skip
        (directory / "leaf.ext").write_text(
            "subjectAltName=DNS:hooks.test\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
        )
        openssl(
            "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext",
            cwd=directory,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("needs the openssl command to make test certificates")
    return directory


@pytest.fixture
def tls_server(certificates, allow):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates / "leaf.pem", certificates / "leaf.key")
    running = Server(tls=context)
    yield running
    running.close()


def test_tls_is_verified_for_the_host_name_on_the_checked_address(
    tls_server, certificates, resolver
):
    resolver.answers["hooks.test"] = [["127.0.0.1"], ["192.0.2.1"]]
    result = deliver(
        f"https://hooks.test:{tls_server.port}/hook",
        body={"secure": True},
        idempotency_key=KEY,
        verify=str(certificates / "ca.pem"),
        timeout=3,
    )
    assert result.status_code == 200
    assert tls_server.sni == ["hooks.test"]
    [request] = tls_server.received
    assert request.headers["Host"] == f"hooks.test:{tls_server.port}"
    assert json.loads(request.body) == {"secure": True}


def test_a_certificate_for_another_name_is_refused(tls_server, certificates, resolver):
    resolver.answers["other.test"] = [["127.0.0.1"]]
    with pytest.raises(
        WebhookConnectionError,
        match="TLS with other.test:.* failed: hostname 'other.test' doesn't match 'hooks.test'",
    ):
        deliver(
            f"https://other.test:{tls_server.port}/",
            body={},
            idempotency_key=KEY,
            verify=str(certificates / "ca.pem"),
        )
    assert tls_server.received == []


def test_an_unknown_certificate_authority_is_refused(tls_server, resolver):
    resolver.answers["hooks.test"] = [["127.0.0.1"]]
    with pytest.raises(
        WebhookConnectionError, match="TLS with hooks.test:.* failed: .*certificate verify failed"
    ):
        deliver(f"https://hooks.test:{tls_server.port}/", body={}, idempotency_key=KEY)
