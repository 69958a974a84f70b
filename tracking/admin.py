from __future__ import annotations

from django.contrib import admin

from core.admin import ReadOnlyModelAdmin
from tracking.models import Conversion, TrackingEvent


@admin.register(TrackingEvent)
class TrackingEventAdmin(ReadOnlyModelAdmin):
    list_display = ("occurred_at", "type", "channel", "source", "user_id", "intervention_id", "received_at")
    list_filter = ("type", "channel", "source")
    search_fields = ("user_id", "event_id")
    date_hierarchy = "occurred_at"
    ordering = ("-occurred_at",)
    show_full_result_count = False


@admin.register(Conversion)
class ConversionAdmin(ReadOnlyModelAdmin):
    list_display = (
        "occurred_at",
        "order_id",
        "user_id",
        "revenue",
        "currency",
        "campaign",
        "variant__name",
        "channel",
        "is_holdout",
    )
    list_filter = ("is_holdout", "channel", "attribution_model", "campaign")
    search_fields = ("order_id", "user_id")
    date_hierarchy = "occurred_at"
    ordering = ("-occurred_at",)
    list_select_related = ("campaign", "variant")
    show_full_result_count = False
