"""The campaign form's pickers and schedule editor in a real headless Chromium, with its JavaScript.

What is checked is what the marketer gets: the channel order changed with the up/down buttons and the
exit events ticked are what the campaign stores after saving, and the next-runs panel follows the
schedule as it is typed, before saving, in the schedule's zone and in the audience's. Set
ADMIN_FORM_SCREENSHOT_PATH=docs/img/admin-campaign-schedule.png to refresh the reference image.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.urls import reverse

from campaigns.models import Campaign
from campaigns.services import segment_create
from personalization.models import Profile
from tests.fixtures import build_cart_rescue
from tests.processes import CHROMIUM, png_size

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs /usr/bin/chromium: run scripts/install-browser.sh (Debian package)",
    ),
]


def _log_in(page, live_server, user) -> None:
    page.goto(f"{live_server.url}{reverse('admin:login')}")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "a-long-test-password")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def _channel_order(page) -> list[str]:
    """The rows top to bottom, an unticked channel marked with a trailing "-"."""
    order: list[str] = page.locator("#id_channels > .ie-order__row").evaluate_all(
        "rows => rows.map(r => r.dataset.channel"
        " + (r.querySelector('input[type=checkbox]').checked ? '' : '-'))"
    )
    return order


def test_it_reorders_channels_and_ticks_exit_events_with_the_pickers(live_server, marketer, browser_page):
    # given the demo campaign (on-site, e-mail, SMS, push; exits on checkout_completed)
    campaign = build_cart_rescue()
    page = browser_page
    _log_in(page, live_server, marketer)
    page.goto(f"{live_server.url}{reverse('admin:campaigns_campaign_change', args=[campaign.pk])}")
    assert _channel_order(page) == ["onsite", "email", "sms", "push"]
    # with JavaScript, the places are hidden behind up/down buttons
    assert not page.locator("#id_channels_place_onsite").is_visible()

    # when the marketer moves e-mail to the top, unticks SMS and ticks "cart abandoned" as an exit
    page.get_by_role("button", name="Move Email up").click()
    assert _channel_order(page) == ["email", "onsite", "sms", "push"]
    page.locator("#id_channels_sms").uncheck()
    assert _channel_order(page) == ["email", "onsite", "push", "sms-"]
    page.get_by_role("button", name="Move Push up").click()
    assert _channel_order(page) == ["email", "push", "onsite", "sms-"]
    page.get_by_label("cart_abandoned — abandoned the cart").check()
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")

    # then the campaign stores the lists the API reads, in the order chosen
    campaign.refresh_from_db()
    assert campaign.channels == ["email", "push", "onsite"]
    assert campaign.exit_events == ["checkout_completed", "cart_abandoned"]
    # and the page shows them so again
    assert _channel_order(page) == ["email", "push", "onsite", "sms-"]


def test_it_previews_the_next_runs_while_the_schedule_is_typed(live_server, marketer, browser_page, tmp_path):
    # given a draft campaign and a segment of gold shoppers, most of them in New York, one in Tokyo
    campaign = build_cart_rescue()
    segment = segment_create(name="Gold", rules='attributes.tier == "gold"', actor_label="t")
    for number, zone in enumerate(["America/New_York", "America/New_York", "Asia/Tokyo"]):
        Profile.objects.create(user_id=f"u-{number}", timezone=zone, attributes={"tier": "gold"})
    page = browser_page
    _log_in(page, live_server, marketer)
    page.goto(f"{live_server.url}{reverse('admin:campaigns_campaign_change', args=[campaign.pk])}")
    panel = page.locator("#ie-schedule")
    assert panel.is_hidden()  # a triggered campaign has no runs

    # when the marketer makes it a daily 10:00 Paris send, at 10:00 on each shopper's clock, to the segment
    page.select_option("#id_kind", "scheduled")
    page.select_option("#id_segment", str(segment.pk))
    page.fill("#id_schedule_timezone", "Europe/Paris")
    page.fill("#id_send_local_time", "10:00")
    page.fill("#id_cron", "0 10 * * *")

    # then, before saving, the panel (now beside the schedule fields) shows five runs in each zone
    rows = panel.locator("table.ie-schedule__runs tbody tr")
    rows.nth(4).wait_for()
    assert rows.count() == 5
    headers = panel.locator("th").all_text_contents()  # the stylesheet capitalises what it shows
    browser_zone = page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    own_clock = [f"On your clock ({browser_zone})"] if browser_zone != "Europe/Paris" else []
    assert headers == [
        "Starts (Europe/Paris)",
        *own_clock,
        "Reaches a shopper in America/New_York",
        "Reaches a shopper in Asia/Tokyo",
    ]
    for row in range(5):
        cells = rows.nth(row).locator("td").all_inner_texts()
        del cells[1 : 1 + len(own_clock)]
        assert all(", 10:00 " in cell for cell in cells), cells
    assert panel.evaluate("p => p.closest('fieldset').querySelector('#id_cron') !== null")

    # when the cron expression is mistyped, the panel says which field is wrong and why
    page.fill("#id_cron", "0 10 * *")
    error = panel.locator(".ie-schedule__errors li[data-field='cron']")
    error.wait_for()
    assert "five fields" in error.inner_text()
    page.fill("#id_cron", "30 9 * * 1")
    page.wait_for_function(
        "() => document.querySelectorAll('#ie-schedule tbody tr').length === 5"
        " && document.querySelector('#ie-schedule td').textContent.includes('Mon')"
    )
    assert Campaign.objects.get(pk=campaign.pk).cron == ""  # nothing was saved

    # when the marketer turns it into a one-off with the admin's own shortcuts ("Today", "Now"), which
    # set the boxes without an input event
    page.fill("#id_cron", "")
    page.locator("#id_send_at_0 + .datetimeshortcuts a", has_text="Today").click()
    page.locator("#id_send_at_1 + .datetimeshortcuts a", has_text="Now").click()

    # then the panel followed them: "now" has passed by the time it is read
    passed = panel.locator(".ie-schedule__errors li[data-field='send_at']")
    passed.wait_for()
    assert "has passed" in passed.inner_text()
    page.fill("#id_cron", "30 9 * * 1")
    page.fill("#id_send_at_0", "")
    page.fill("#id_send_at_1", "")
    rows.nth(4).wait_for()

    screenshot = tmp_path / "admin-campaign-schedule.png"
    # The form from the exit events down to the channels: the pickers and the schedule editor in one shot.
    page.locator("#toggle-nav-sidebar").click()
    page.set_viewport_size({"width": 1360, "height": page.evaluate("document.documentElement.scrollHeight")})
    top = page.locator(".field-exit_events").bounding_box()
    bottom = page.locator(".field-channels, .field-box.field-channels").first.bounding_box()
    assert top is not None
    assert bottom is not None
    clip = {
        "x": 0,
        "y": top["y"] - 8,
        "width": 1360,
        "height": bottom["y"] + bottom["height"] - top["y"] + 24,
    }
    page.screenshot(path=str(screenshot), clip=clip)
    data = screenshot.read_bytes()
    assert png_size(data)[0] >= 1000
    if reference := os.environ.get("ADMIN_FORM_SCREENSHOT_PATH"):
        Path(reference).write_bytes(data)
