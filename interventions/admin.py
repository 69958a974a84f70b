from __future__ import annotations

from django.contrib import admin
from django.utils.safestring import SafeString

from core.admin import ReadOnlyModelAdmin, status_badge
from interventions.models import Intervention


@admin.register(Intervention)
class InterventionAdmin(ReadOnlyModelAdmin):
    list_display = (
        "created_at",
        "user_id",
        "campaign",
        "variant__name",
        "status_badge",
        "channel",
        "is_holdout",
        "suppression_reason",
    )
    list_filter = ("status", "channel", "is_holdout", "suppression_reason", "campaign")
    search_fields = ("=user_id", "=trigger_event_id", "=cart_id")
    date_hierarchy = "created_at"
    list_select_related = ("campaign", "variant")
    ordering = ("-created_at",)
    show_full_result_count = False

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Intervention) -> SafeString:
        return status_badge(obj.status, obj.get_status_display())
