"""The demo shop in a real headless Chromium against a real daphne (and, for the full loop, the Kafka
consumer): prediction → decision → push over /ws → pop-up → click recorded; and a socket killed while
interventions are pushed still shows every one of them after resume.

Debian's Chromium, driven by Playwright for Python through executable_path (never a downloaded browser):
scripts/install-browser.sh installs it; without it these tests are skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection
from django.utils import timezone

from campaigns.models import Campaign
from gateway import realtime
from interventions.models import Intervention
from messaging.kafka import ensure_topics
from personalization.models import Profile
from tests.processes import database_url, free_port
from tracking.models import TrackingEvent

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium (scripts/install-browser.sh)"
    ),
]


def _wait_until(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module", autouse=True)
def allow_orm_beside_playwright() -> Iterator[None]:
    # Playwright's sync API keeps an event loop running in this thread for the whole module; the ORM
    # calls made here (and the database flush between tests) are ordinary blocking calls between browser
    # steps, which is what this flag permits.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="module")
def server_env(django_db_setup) -> dict[str, str]:
    """The environment of the server processes: this test's database, Redis and private topics."""
    port = free_port()
    prefix = f"h-browser-{uuid.uuid4().hex[:8]}."
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "intervention_engine.settings",
        "DATABASE_URL": database_url(),
        "KAFKA_TOPIC_PREFIX": prefix,
        "KAFKA_CONSUMER_GROUP": f"ie-browser-{uuid.uuid4().hex[:8]}",
        "PORT": str(port),
        "WS_ALLOWED_ORIGINS": f"http://127.0.0.1:{port}",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DEMO_ENABLED": "true",
        "LOG_FORMAT": "console",
        "PYTHONUNBUFFERED": "1",
        "DATABASE_CONN_MAX_AGE": "0",
    }


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def daphne(server_env, tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """A real daphne serving the project on a free port; yields (base url, its log file)."""
    port = server_env["PORT"]
    log = tmp_path_factory.mktemp("daphne") / "daphne.log"
    asgi = "intervention_engine.asgi:application"
    process = _spawn([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", port, asgi], server_env, log)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/health/live", timeout=1).status_code == 200
        except httpx.HTTPError:
            assert process.poll() is None, log.read_text()
            return False

    _wait_until(up, timeout=30, what="daphne")
    yield base, log
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="module")
def browser(daphne) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator[Any]:
    """A fresh browser context: new cookies, so a new demo shopper."""
    context = browser.new_context()
    page = context.new_page()
    # The demo CTA points at the real shop; answer it locally instead of leaving the machine.
    page.route("https://shop.example.com/**", lambda route: route.fulfill(body="<h1>Your cart</h1>"))
    yield page
    context.close()


def _push_from_a_thread(intervention_ids: list[uuid.UUID]) -> None:
    """intervention_push is synchronous (async_to_sync), and Playwright's loop occupies this thread."""

    def push() -> None:
        try:
            realtime.intervention_push(intervention_ids=intervention_ids)
        finally:
            connection.close()

    thread = threading.Thread(target=push)
    thread.start()
    thread.join(10)


def _open_demo(page: Any, base: str) -> str:
    page.goto(f"{base}/demo/")
    page.wait_for_selector("#status[data-status=open]", timeout=15000)
    return str(page.text_content("#shopper"))


@pytest.mark.kafka
def test_it_shows_a_prediction_as_a_pop_up_and_records_the_click(
    daphne, page, server_env, settings, tmp_path
):
    # given the demo campaign (no holdout, so this shopper is treated), its topics, and the consumer
    from campaigns.demo import demo_load

    demo_load()
    Campaign.objects.filter(name="Cart rescue").update(holdout_percent=0)
    prefix = server_env["KAFKA_TOPIC_PREFIX"]
    settings.KAFKA_TOPICS = {name: f"{prefix}{name}" for name in settings.KAFKA_TOPICS}
    ensure_topics(partitions=1)
    consumer = _spawn([sys.executable, "manage.py", "consume_events"], server_env, tmp_path / "consumer.log")
    try:
        base, _ = daphne
        user_id = _open_demo(page, base)

        # when the shopper fills a cart and goes idle (the demo publishes a 0.9 prediction to Kafka)
        page.click("button.add >> nth=0")
        page.click("button.add >> nth=1")
        # (each add publishes the shop's enriched cart event; a real shopper idles for minutes after it)
        _wait_until(
            lambda: Profile.objects.filter(
                user_id=user_id, first_name="Alex", last_cart__total=248.9
            ).exists(),
            timeout=40,
            what="the cart reaching the shopper's profile",
        )
        page.click("#go-idle")

        # then the pop-up appears (the consumer may still be joining its group: allow for it)
        box = page.wait_for_selector(".ie-box", timeout=40000)
        assert box.get_attribute("role") in {"dialog", "region"}
        # and it speaks of this cart and this shopper (the demo published the cart before the prediction)
        text = box.inner_text()
        assert "€248.90" in text  # 99.90 + 149.00, priced from the catalogue
        assert "Alex" in text
        assert page.locator(".ie-close").get_attribute("aria-label") == "Close"
        intervention_id = box.get_attribute("data-intervention-id")

        # when the shopper clicks the call to action
        page.click(".ie-cta")
        page.wait_for_url("https://shop.example.com/**", timeout=10000)

        # then the click, the display and the delivery are recorded against the shopper's intervention
        def recorded() -> set[str]:
            return set(
                TrackingEvent.objects.filter(intervention_id=intervention_id, source="websocket").values_list(
                    "type", flat=True
                )
            )

        assert _wait_until(lambda: {"clicked", "displayed"} <= recorded(), timeout=10, what="the click")
        intervention = Intervention.objects.get(id=intervention_id)
        assert intervention.user_id == user_id
        assert intervention.status == "delivered"
    finally:
        consumer.terminate()
        consumer.wait(15)


def test_it_shows_every_intervention_after_the_socket_is_killed_mid_stream(daphne, page, onsite_intervention):
    base, log = daphne
    user_id = _open_demo(page, base)
    count = 12
    interventions = [
        onsite_intervention(user_id=user_id, seq=seq, title=f"offer {seq}", kind="toast")
        for seq in range(1, count + 1)
    ]

    # when interventions are pushed one by one while the browser's socket is killed twice
    def push_all() -> None:
        try:
            for intervention in interventions:
                realtime.intervention_push(intervention_ids=[intervention.id])
                time.sleep(0.1)
        finally:
            connection.close()

    pusher = threading.Thread(target=push_all)
    pusher.start()
    for opens in (2, 3):
        time.sleep(0.2)
        page.evaluate("window.demoConnection.socket.close()")
        page.wait_for_selector(f"#status[data-opens='{opens}']", timeout=10000)
    pusher.join()

    # then, after reconnect and resume, each one is listed exactly once, in seq order
    def listed() -> list[int]:
        return [int(s) for s in page.eval_on_selector_all("#ie-log li", "els => els.map(e => e.dataset.seq)")]

    _wait_until(lambda: len(listed()) >= count, timeout=20, what="every intervention")
    assert sorted(listed()) == list(range(1, count + 1))
    assert len(listed()) == count
    # and every one was acked (delivered) in PostgreSQL
    _wait_until(
        lambda: Intervention.objects.filter(user_id=user_id, status="delivered").count() == count,
        timeout=10,
        what="acks",
    )
    # and the socket really was killed and reopened, and no ticket ever reached daphne's log
    assert log.read_text().count("WSCONNECT /ws") >= 3
    assert "ticket=" not in log.read_text()


def test_it_shows_interventions_in_seq_order_when_a_push_is_lost_on_an_open_socket(
    daphne, page, onsite_intervention
):
    # given an open tab that has shown seq 1
    base, _ = daphne
    user_id = _open_demo(page, base)
    first, _lost, third = (
        onsite_intervention(user_id=user_id, seq=seq, title=f"offer {seq}", kind="toast") for seq in (1, 2, 3)
    )

    def listed() -> list[int]:
        return [int(s) for s in page.eval_on_selector_all("#ie-log li", "els => els.map(e => e.dataset.seq)")]

    _push_from_a_thread([first.id])
    _wait_until(lambda: listed() == [1], timeout=10, what="seq 1")

    # when the push of seq 2 is lost (the channel layer may drop one) and seq 3 arrives
    _push_from_a_thread([third.id])

    # then the hole is filled from PostgreSQL and the tab shows 2 before 3
    _wait_until(lambda: len(listed()) >= 3, timeout=10, what="the hole filled")
    assert listed() == [1, 2, 3]


def test_it_never_shows_an_expired_intervention(daphne, page, onsite_intervention):
    # given a pending intervention that expired a second ago, and a fresh one
    base, _ = daphne
    user_id = _open_demo(page, base)
    onsite_intervention(user_id=user_id, seq=1, title="stale", expires_in=timedelta(seconds=-1))
    fresh = onsite_intervention(user_id=user_id, seq=2, title="fresh")

    # when the page reconnects and resumes
    page.reload()
    page.wait_for_selector("#status[data-status=open]", timeout=15000)
    page.wait_for_selector(f".ie-box[data-intervention-id='{fresh.id}']", timeout=10000)

    # then only the fresh one was received, and acked (the ack is awaited: the test ends with no write
    # from daphne still in flight)
    assert page.eval_on_selector_all("#ie-log li", "els => els.map(e => e.dataset.seq)") == ["2"]
    _wait_until(
        lambda: (
            Intervention.objects.filter(pk=fresh.pk, status="delivered").exists()
            and TrackingEvent.objects.filter(intervention_id=fresh.pk, type="displayed").exists()
        ),
        timeout=10,
        what="the fresh intervention's ack and display",
    )
    stale = Intervention.objects.get(user_id=user_id, seq=1)
    assert stale.expires_at is not None
    assert stale.expires_at < timezone.now()


def test_it_renders_a_modal_accessibly_and_reports_the_dismissal(daphne, page, onsite_intervention):
    # given a shopper on the demo page with the focus on a product button
    base, _ = daphne
    user_id = _open_demo(page, base)
    page.focus("button.add >> nth=2")
    intervention = onsite_intervention(user_id=user_id, seq=1, title="Wait!", kind="modal")

    # when a modal intervention arrives
    _push_from_a_thread([intervention.id])
    dialog = page.wait_for_selector(".ie-box[role=dialog]", timeout=10000)

    # then it is a labelled modal dialog holding the focus, and Tab cannot leave it
    assert dialog.get_attribute("aria-modal") == "true"
    title_id = dialog.get_attribute("aria-labelledby")
    assert page.text_content(f"#{title_id}") == "Wait!"
    inside = "() => document.activeElement.closest('.ie-box') !== null"
    assert page.evaluate(inside)
    for key in ("Tab", "Tab", "Tab", "Shift+Tab", "Shift+Tab", "Shift+Tab"):
        page.keyboard.press(key)
        assert page.evaluate(inside), key

    # when the shopper presses Escape
    page.keyboard.press("Escape")

    # then the dialog is gone, the focus is back where it was, and the dismissal is recorded
    page.wait_for_selector(".ie-box", state="detached", timeout=5000)
    assert page.evaluate("() => document.activeElement.dataset.sku") == "SKU-SOCKS"
    _wait_until(
        lambda: TrackingEvent.objects.filter(intervention=intervention, type="dismissed").exists(),
        timeout=10,
        what="the dismissal",
    )
