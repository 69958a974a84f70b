"""The campaign page in a real headless Chromium: what a marketer sees, including a screenshot.

Chromium is Debian's package (scripts/install-browser.sh); Playwright drives that binary and never
downloads browsers. Set ADMIN_SCREENSHOT_PATH=docs/img/admin-campaign.png to refresh the reference image.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.urls import reverse

from tests.fixtures import build_cart_rescue
from tests.processes import CHROMIUM, png_size

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs /usr/bin/chromium: run scripts/install-browser.sh (Debian package)",
    ),
]


def test_it_shows_a_marketer_the_campaign_preview_in_a_real_browser(
    live_server, marketer, browser_page, tmp_path
):
    # given: the demo campaign, and a marketer logged in through the login page
    campaign = build_cart_rescue()
    page = browser_page
    page.goto(f"{live_server.url}{reverse('admin:login')}")
    page.fill("#id_username", marketer.username)
    page.fill("#id_password", "a-long-test-password")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")

    # when
    page.goto(f"{live_server.url}{reverse('admin:campaigns_campaign_change', args=[campaign.pk])}")

    # then: the on-site pop-up of the first variant, as the shopper will see it
    modal = page.locator("[data-variant='10% discount'] .ie-onsite--modal")
    assert modal.locator(".ie-onsite__title").inner_text() == "Ada, your cart is waiting"
    assert modal.locator(".ie-onsite__cta").inner_text() == "Use my 10% off"
    assert modal.locator(".ie-onsite__code").inner_text() == "SAVE10"
    assert modal.is_visible()
    # the stylesheet applied: the CTA is a filled button, not a bare link
    assert (
        modal.locator(".ie-onsite__cta").evaluate("e => getComputedStyle(e).backgroundColor")
        != "rgba(0, 0, 0, 0)"
    )
    # the email runs in a sandboxed frame
    frame = page.locator("[data-variant='10% discount'] iframe.ie-email__frame")
    assert frame.get_attribute("sandbox") == ""
    assert "Still thinking, Ada?" in frame.content_frame.locator("h1").inner_text()
    # the French locale
    page.click(".ie-locales a:text('fr')")
    assert page.locator("[data-variant='10% discount'] .ie-onsite__title").inner_text() == (
        "Camille, votre panier vous attend"
    )
    page.click(".ie-locales a:text('en')")

    screenshot = tmp_path / "admin-campaign.png"
    page.locator("#toggle-nav-sidebar").click()  # the sticky sidebar would repeat down a full-page shot
    for email in page.locator("iframe.ie-email__frame").all():
        email.content_frame.locator("h1").wait_for()
    # One tall viewport rather than a stitched full-page capture: Chromium paints sandboxed (opaque-origin)
    # frames only inside the viewport.
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": 1360, "height": height})
    page.screenshot(path=str(screenshot))
    data = screenshot.read_bytes()
    width, height = png_size(data)
    assert width >= 1000
    assert height >= 900
    assert len(data) > 50_000
    if reference := os.environ.get("ADMIN_SCREENSHOT_PATH"):
        Path(reference).write_bytes(data)
