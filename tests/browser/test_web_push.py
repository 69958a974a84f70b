"""Web Push from the demo shop in a real headless Chromium: the JS client registers its service worker,
subscribes with the engine's VAPID key and hands the subscription over; a push campaign's delivery then
leaves through the real pywebpush to a local push service that decrypts it with the subscription's
private key; the decrypted message, given to the page's service worker, shows as a notification.

What cannot run here: Chromium's own ``pushManager.subscribe`` (headless Chromium refuses it —
"Registration failed - permission denied" — and a real subscription lives on Google's push service,
which this machine cannot reach). So ``PushManager.subscribe`` answers, in this page only, with a
subscription of the local push service (a P-256 key pair and auth secret made as a browser makes them),
and the push service's hop to the browser is played by DevTools' ``ServiceWorker.deliverPushMessage``.
Everything of ours runs for real: the JS client, the service worker, the registration, the encryption,
the VAPID signature and the send path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from campaigns.models import Campaign
from chaos.push_service_stub import PushServiceStub
from core.vapid import vapid_application_server_key, vapid_private_key_generate
from interventions.models import Delivery, Intervention
from messaging.models import OutboxMessage
from notifications.services import delivery_send
from personalization.models import Profile, PushToken
from tests.processes import database_url, free_port

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium (scripts/install-browser.sh)"
    ),
]
VAPID_KEY = vapid_private_key_generate()
APPLICATION_SERVER_KEY = vapid_application_server_key(VAPID_KEY)

# In this page only: PushManager.subscribe answers with the local push service's subscription, and
# records the applicationServerKey the client passed (base64url), for the test to compare.
_FAKE_SUBSCRIBE = """
(() => {
  const subscription = %s;
  window.__subscribedWith = null;
  let current = null;
  PushManager.prototype.getSubscription = async function () { return current; };
  PushManager.prototype.subscribe = async function (options) {
    const bytes = new Uint8Array(options.applicationServerKey);
    window.__subscribedWith = btoa(String.fromCharCode(...bytes))
      .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
    current = {
      endpoint: subscription.endpoint,
      toJSON: () => subscription,
      unsubscribe: async () => { current = null; return true; },
    };
    return current;
  };
})();
"""


@pytest.fixture(scope="module")
def server_env(django_db_setup) -> dict[str, str]:
    port = free_port()
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "intervention_engine.settings",
        "DATABASE_URL": database_url(),
        "PORT": str(port),
        "WS_ALLOWED_ORIGINS": f"http://127.0.0.1:{port}",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DEMO_ENABLED": "true",
        "WEBPUSH_VAPID_PRIVATE_KEY": VAPID_KEY,
        "LOG_FORMAT": "console",
        "PYTHONUNBUFFERED": "1",
        "DATABASE_CONN_MAX_AGE": "0",
    }


@pytest.fixture(scope="module", autouse=True)
def allow_orm_beside_playwright() -> Iterator[None]:
    # Playwright's sync API keeps an event loop running in this thread; the ORM calls between browser
    # steps are ordinary blocking calls, which this flag permits (as in test_demo_shop.py).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


def _wait_until(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return result


@pytest.fixture(scope="module")
def daphne(server_env, tmp_path_factory) -> Iterator[str]:
    """A real daphne serving the project (with this module's VAPID key); yields its base URL."""
    port = server_env["PORT"]
    log = tmp_path_factory.mktemp("daphne") / "daphne.log"
    args = [
        sys.executable,
        "-m",
        "daphne",
        "-b",
        "127.0.0.1",
        "-p",
        port,
        "intervention_engine.asgi:application",
    ]
    process = subprocess.Popen(
        args, cwd=ROOT, env=server_env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/health/live", timeout=1).status_code == 200
        except httpx.HTTPError:
            assert process.poll() is None, log.read_text()
            return False

    _wait_until(up, timeout=30, what="daphne")
    yield base
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="module")
def browser(daphne) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    flags += ["--disable-component-update", "--no-first-run"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
        yield browser
        browser.close()


@pytest.fixture
def push_service() -> Iterator[PushServiceStub]:
    stub = PushServiceStub().start()
    yield stub
    stub.stop()


def _push_delivery(profile: Profile) -> Delivery:
    campaign = Campaign.objects.create(
        name=f"push {uuid.uuid4().hex[:8]}", trigger="prediction.cart_abandonment"
    )
    intervention = Intervention.objects.create(
        campaign=campaign,
        profile=profile,
        user_id=profile.user_id,
        trigger_event_id=uuid.uuid4().hex,
        trigger="prediction.cart_abandonment",
        channel="push",
        content={
            "subject": "Your cart misses you",
            "body_text": "Trail shoes, still yours.",
            "cta_url": "https://shop.example.com/cart",
        },
    )
    return Delivery.objects.create(intervention=intervention, channel="push")


def test_it_subscribes_from_the_demo_shop_and_shows_a_push_encrypted_by_the_engine(
    daphne,
    browser,
    push_service,
    settings,
) -> None:
    # given the demo shop in a browser that allows notifications
    base = daphne
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=base)
    subscription = push_service.subscribe(application_server_key=APPLICATION_SERVER_KEY)
    context.add_init_script(_FAKE_SUBSCRIBE % json.dumps(subscription))
    page = context.new_page()
    try:
        page.goto(f"{base}/demo/")
        user_id = str(page.text_content("#shopper"))

        # when the shopper asks for notifications
        page.click("#push-subscribe")

        # then the client subscribed with the engine's key and the subscription is the shopper's device
        page.wait_for_selector("#push-result[data-endpoint]", timeout=15000)
        assert page.evaluate("window.__subscribedWith") == APPLICATION_SERVER_KEY
        token = _wait_until(
            lambda: PushToken.objects.filter(profile__user_id=user_id, platform="web").first(),
            timeout=10,
            what="the subscription registered",
        )
        assert (token.token, token.keys) == (subscription["endpoint"], subscription["keys"])

        # when a push campaign's delivery is sent through the webpush provider
        settings.WEBPUSH_VAPID_PRIVATE_KEY = VAPID_KEY
        settings.NOTIFICATION_PROVIDERS = {**settings.NOTIFICATION_PROVIDERS, "push": ["webpush"]}
        settings.NOTIFICATION_RATE_LIMITS = {}
        delivery = _push_delivery(Profile.objects.get(user_id=user_id))
        assert delivery_send(delivery_id=delivery.pk) == "sent"

        # then the push service verified our signature and decrypted it with the subscription's key
        [received] = push_service.received
        assert received["payload"]["title"] == "Your cart misses you"

        # when that message reaches the page's service worker (the push service's hop to the browser)
        cdp = context.new_cdp_session(page)
        registrations: list[dict[str, Any]] = []
        cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
        cdp.send("ServiceWorker.enable")
        # The push is handed to the registration whose worker is active: one still installing drops it, so
        # the hop is repeated (as a push service retries) until the page shows the notification.
        page.evaluate("async () => { await navigator.serviceWorker.ready; }")
        shown: list[dict[str, Any]] = []
        delivered_at = -10.0
        for _ in range(100):  # Playwright hands over CDP events only while it is called: wait through it
            active = [r for r in registrations if "/demo/" in r["scopeURL"] and not r["isDeleted"]]
            if active and time.monotonic() - delivered_at > 3:
                delivered_at = time.monotonic()
                cdp.send(
                    "ServiceWorker.deliverPushMessage",
                    {
                        "origin": base,
                        "registrationId": active[-1]["registrationId"],
                        "data": json.dumps(received["payload"]),
                    },
                )
            # then it shows as a notification with the engine's title and text, its link the tracked click
            shown = page.evaluate(
                """async () => {
                    const registration = await navigator.serviceWorker.ready;
                    const shown = await registration.getNotifications();
                    return shown.map(n => ({title: n.title, body: n.body, url: (n.data || {}).url}));
                }"""
            )
            if shown:
                break
            page.wait_for_timeout(300)
        assert registrations, "no service worker registration was reported"
        # (a repeated hop may show the same message twice; it is one message)
        assert {n["title"] for n in shown} == {"Your cart misses you"}
        assert shown[0]["body"].startswith("Trail shoes, still yours.")
        assert "/t/c/" in shown[0]["url"]
    finally:
        context.close()


def test_it_turns_notifications_off_from_the_client(daphne, browser, push_service) -> None:
    # given a demo shopper subscribed in the browser
    base = daphne
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=base)
    subscription = push_service.subscribe(application_server_key=APPLICATION_SERVER_KEY)
    context.add_init_script(_FAKE_SUBSCRIBE % json.dumps(subscription))
    page = context.new_page()
    try:
        page.goto(f"{base}/demo/")
        user_id = str(page.text_content("#shopper"))
        page.click("#push-subscribe")
        page.wait_for_selector("#push-result[data-endpoint]", timeout=15000)

        # when the shopper turns notifications off
        page.click("#push-unsubscribe")

        # then the subscription is forgotten, push consent withdrawn and the opt-out published
        page.wait_for_selector("#push-result[data-off=true]", timeout=15000)
        profile = Profile.objects.get(user_id=user_id)
        assert not profile.consent_push
        assert not PushToken.objects.filter(profile=profile).exists()
        published = [
            m.payload
            for m in OutboxMessage.objects.filter(key=user_id, topic__endswith="intervention-events")
        ]
        assert [(p["type"], p["channel"], p["reason"]) for p in published] == [
            ("engagement.unsubscribed", "push", "client")
        ]
    finally:
        context.close()
