"""The results page (verdict, charts over time) and the overview in a real headless Chromium, with
screenshots. Set RESULTS_SCREENSHOT_DIR=docs/img to refresh the reference images."""

from __future__ import annotations

import os
import random
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign
from tests import fixtures as f
from tests.fixtures import expose
from tests.processes import CHROMIUM, png_size
from tracking.attribution import OrderPlaced, conversions_record

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs /usr/bin/chromium: run scripts/install-browser.sh"
    ),
]


def _two_weeks_of_b_beating_control() -> Campaign:
    """Control (4 %), B (7 %) and a 10 % holdout (3 %), 120 shoppers a day per variant for 10 days."""
    rng = random.Random(18)
    campaign = f.campaign(
        channels=["email"],
        variants=[{"name": "Control", "weight": 1, "is_control": True}, "B"],
        holdout_percent=Decimal("10"),
        name="Cart rescue: free shipping test",
    )
    control, b = campaign.variants.order_by("pk")
    now = timezone.now()
    orders = []
    for day in range(10, 0, -1):
        exposed_at = now - timedelta(days=day - 1, hours=3)
        for variant, count, rate, holdout in (
            (control, 120, 0.04, False),
            (b, 120, 0.07, False),
            (b, 26, 0.03, True),
        ):
            users = [f.unique("s") for _ in range(count)]
            expose(
                campaign=campaign,
                variant=variant,
                users=users,
                holdout=holdout,
                minutes_ago=(now - exposed_at).total_seconds() / 60,
            )
            for user in users:
                if rng.random() < rate:
                    orders.append(
                        OrderPlaced(
                            order_id=f.unique("o"),
                            user_id=user,
                            revenue=Decimal(rng.choice(["24.90", "39.00", "58.50", "82.00"])),
                            currency="EUR",
                            occurred_at=exposed_at + timedelta(hours=rng.uniform(0.2, 2.5)),
                        )
                    )
    conversions_record(orders=orders)
    return campaign


def _login(page, live_server, marketer) -> None:
    page.goto(f"{live_server.url}{reverse('admin:login')}")
    page.fill("#id_username", marketer.username)
    page.fill("#id_password", "a-long-test-password")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def _shoot(page, tmp_path: Path, name: str) -> bytes:
    page.locator("#toggle-nav-sidebar").click()
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": 1360, "height": height})
    screenshot = tmp_path / name
    page.screenshot(path=str(screenshot))
    data = screenshot.read_bytes()
    if directory := os.environ.get("RESULTS_SCREENSHOT_DIR"):
        (Path(directory) / name).write_bytes(data)
    return data


def test_it_draws_the_verdict_and_the_charts_over_time_in_a_real_browser(
    live_server, marketer, browser_page, tmp_path
):
    # given ten days of B beating control, and a marketer logged in
    campaign = _two_weeks_of_b_beating_control()
    page = browser_page
    _login(page, live_server, marketer)

    # when the campaign's results are opened
    page.goto(f"{live_server.url}{reverse('admin-campaign-report', args=[campaign.pk])}")

    # then the verdict reads in words, and the four charts over time are drawn with lines across the days
    verdicts = page.locator("#ie-verdict li").all_inner_texts()
    assert any(text.startswith("B vs Control: B beats control: +") for text in verdicts), verdicts
    charts = page.locator("#ie-over-time svg.ie-chart--time")
    assert charts.count() == 4
    box = charts.first.bounding_box()
    assert box is not None
    assert box["width"] > 600
    lift = page.locator("#ie-time-lift-0")
    assert lift.locator("path.ie-line--valid").count() == 1
    assert lift.locator("circle.ie-dot--valid").count() >= 10
    data = _shoot(page, tmp_path, "admin-results.png")
    width, height = png_size(data)
    assert width >= 1000
    assert height >= 1500


def test_it_shows_the_overview_in_a_real_browser(live_server, marketer, browser_page, tmp_path):
    # given the campaign and an idle one
    campaign = _two_weeks_of_b_beating_control()
    f.campaign(channels=["email"], variants=("Only",))
    page = browser_page
    _login(page, live_server, marketer)

    # when the overview is opened from the admin index and sorted by name
    page.goto(f"{live_server.url}{reverse('admin:index')}")
    page.click("text=Campaign results")
    page.click("#ie-overview th a:text('Campaign')")

    # then both campaigns are listed by name, the tested one with its verdict
    row = page.locator(f"tr[data-campaign='{campaign.pk}']")
    assert "beats holdout" in row.inner_text() or "No decision yet" in row.inner_text()
    assert page.locator("#ie-overview tbody tr").count() == 2
    data = _shoot(page, tmp_path, "admin-results-overview.png")
    assert png_size(data)[0] >= 1000
