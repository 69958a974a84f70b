"""Forwarding headers (X-Forwarded-Proto, X-Forwarded-For) count only from TRUSTED_PROXIES."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from ipware import get_client_ip

from intervention_engine.proxies import TrustedProxyMiddleware

pytestmark = pytest.mark.django_db


@pytest.fixture
def behind_proxy(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    return settings


def test_it_believes_x_forwarded_proto_only_from_a_trusted_proxy(behind_proxy) -> None:
    # when a browser claims https itself, and the proxy says so
    claimed = Client(REMOTE_ADDR="203.0.113.9").get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")
    proxied = Client(REMOTE_ADDR="10.0.0.2").get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")

    # then the browser's request is still plain HTTP (redirected), the proxy's is https
    assert claimed.status_code == 301
    assert claimed["Location"].startswith("https://")
    assert proxied.status_code == 200


def test_it_believes_no_forwarding_header_when_no_proxy_is_configured(behind_proxy) -> None:
    behind_proxy.TRUSTED_PROXIES = []

    response = Client(REMOTE_ADDR="10.0.0.2").get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")

    assert response.status_code == 301


def client_ip_seen(remote_addr: str, **headers: Any) -> str | None:
    seen: list[HttpRequest] = []

    def view(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        return HttpResponse()

    request = RequestFactory().get("/", REMOTE_ADDR=remote_addr, **headers)
    TrustedProxyMiddleware(view)(request)
    ip, _ = get_client_ip(seen[0])  # what django-structlog logs
    return ip


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        # a browser naming any address it likes: its own address is logged
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),
        # through our proxies: the nearest hop that is not one of them; what the client prepended is ignored
        ("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.0.0.5", "198.51.100.7"),
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", "not-an-ip, 198.51.100.7", "198.51.100.7"),
    ],
)
def test_it_takes_the_client_address_from_x_forwarded_for_only_behind_a_trusted_proxy(
    behind_proxy, peer, forwarded_for, client
) -> None:
    headers: dict[str, Any] = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for else {}

    assert client_ip_seen(peer, HTTP_X_REAL_IP="6.6.6.6", **headers) == client
