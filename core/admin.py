"""Admin base classes every app's admin builds on."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """For records the system writes (interventions, events, outbox): anyone may look, nobody edits.

    Editing them by hand would make the reports and the replay log lie about what happened.
    """

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def status_badge(status: str, label: str) -> SafeString:
    """A status as the coloured badge the admin's stylesheet draws (``ie-badge--<status>``)."""
    return format_html('<span class="ie-badge ie-badge--{}">{}</span>', status, label)
