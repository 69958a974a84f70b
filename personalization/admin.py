"""Shoppers' profiles in the back office: look, search, filter; changes come from the event stream.

Segments are edited on their own admin page registered in campaigns/admin.py: every segment edit is
audited, and the audit log belongs to campaigns, which this app must not import.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from personalization.models import Profile, PushToken


class PushTokenInline(admin.TabularInline):
    model = PushToken
    extra = 0
    fields = ("platform", "app_id", "short_token", "is_active", "created_at", "invalidated_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="token")
    def short_token(self, obj: PushToken) -> str:
        return f"{obj.token[:24]}…" if len(obj.token) > 24 else obj.token


def _consent_icon(allowed: bool, suppressed: bool = False) -> SafeString:
    if suppressed:
        return format_html('<span title="{}">⛔</span>', "Suppressed: the provider reported it undeliverable")
    return format_html(
        '<span title="{}">{}</span>', "Consented" if allowed else "No consent", "✅" if allowed else "—"
    )


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = (
        "user_id",
        "email",
        "locale",
        "orders_count",
        "total_revenue",
        "last_seen_at",
        "onsite",
        "email_consent",
        "sms",
        "push",
    )
    list_filter = ("consent_onsite", "consent_email", "consent_sms", "consent_push", "locale")
    search_fields = ("=user_id", "email")
    date_hierarchy = "last_seen_at"
    ordering = ("-last_seen_at",)
    inlines = [PushTokenInline]
    show_full_result_count = False
    fieldsets = (
        (None, {"fields": ("user_id", "first_name", "email", "phone", "locale", "timezone")}),
        (
            "Consent and quiet hours",
            {
                "fields": (
                    ("consent_onsite", "consent_email", "consent_sms", "consent_push"),
                    ("email_suppressed_at", "phone_suppressed_at"),
                    ("quiet_hours_start", "quiet_hours_end"),
                )
            },
        ),
        (
            "Behaviour",
            {
                "fields": (
                    "attributes",
                    "last_cart",
                    ("orders_count", "total_revenue"),
                    ("last_seen_at", "last_order_at"),
                    "engagement",
                )
            },
        ),
        ("Record", {"fields": (("created_at", "updated_at", "erased_at"),), "classes": ("collapse",)}),
    )
    readonly_fields = ("created_at", "updated_at", "erased_at", "onsite_seq")

    @admin.display(description="on-site")
    def onsite(self, obj: Profile) -> SafeString:
        return _consent_icon(obj.consent_onsite)

    @admin.display(description="email consent")
    def email_consent(self, obj: Profile) -> SafeString:
        return _consent_icon(obj.consent_email, obj.email_suppressed_at is not None)

    @admin.display(description="SMS")
    def sms(self, obj: Profile) -> SafeString:
        return _consent_icon(obj.consent_sms, obj.phone_suppressed_at is not None)

    @admin.display(description="push")
    def push(self, obj: Profile) -> SafeString:
        return _consent_icon(obj.consent_push)
