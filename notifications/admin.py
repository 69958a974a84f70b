"""Operators' view of the send ledger: deliveries, their errors, retry / resolve, provider health."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from core.admin import admin_permission_required
from core.errors import ApplicationError
from interventions.models import Delivery
from interventions.selectors import delivery_list
from interventions.services import delivery_resolve
from notifications import selectors, services
from notifications.models import ProviderAttempt

# The health page sums up the provider attempts, error strings included: whoever may read those.
PROVIDER_HEALTH_PERMISSION = "notifications.view_providerattempt"


class NeedsAttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "Failed or unknown, not resolved")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> QuerySet[Delivery]:
        if self.value() == "open":
            return queryset.filter(status__in=["failed", "unknown"], resolved_at__isnull=True)
        return queryset


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "channel",
        "status",
        "provider",
        "attempts",
        "short_error",
        "queued_at",
        "sent_at",
        "resolved_at",
    ]
    list_filter = [NeedsAttentionFilter, "status", "channel", "provider", "error_kind"]
    search_fields = ["id", "provider_message_id", "intervention__user_id"]
    date_hierarchy = "queued_at"
    list_select_related = ["intervention"]
    readonly_fields = [
        "intervention",
        "channel",
        "provider",
        "status",
        "attempts",
        "next_attempt_at",
        "error_kind",
        "last_error",
        "provider_message_id",
        "provider_response",
        "queued_at",
        "sending_at",
        "sent_at",
        "delivered_at",
        "failed_at",
        "resolved_at",
        "updated_at",
    ]
    actions = ["retry", "mark_resolved"]
    change_list_template = "admin/notifications/delivery/change_list.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        return delivery_list()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    @admin.display(description="Last error")
    def short_error(self, delivery: Delivery) -> str:
        return delivery.last_error[:80]

    # Retrying sends the message to the shopper again (an `unknown` one may already have arrived): an
    # operator's decision, granted on its own (interventions.retry_delivery), never with "change".
    @admin.action(description="Retry (failed or unknown → queued)", permissions=["retry_delivery"])
    def retry(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        self._each(request, queryset, services.delivery_retry, "queued again")

    def has_retry_delivery_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("interventions.retry_delivery")

    # Resolving only records that someone looked at the failure; every field of a delivery is read-only
    # here, so "change delivery" means exactly this.
    @admin.action(description="Mark resolved", permissions=["change"])
    def mark_resolved(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        self._each(request, queryset, delivery_resolve, "resolved")

    def _each(self, request: HttpRequest, queryset: QuerySet[Delivery], action: Any, verb: str) -> None:
        done, refused = 0, []
        for delivery in queryset:
            try:
                action(delivery=delivery)
                done += 1
            except ApplicationError as error:
                refused.append(error.message)
        if done:
            self.message_user(request, f"{done} deliveries {verb}.", messages.SUCCESS)
        for message in refused[:5]:
            self.message_user(request, message, messages.WARNING)

    def get_urls(self) -> list[URLPattern]:
        health = path(
            "provider-health/",
            self.admin_site.admin_view(self.provider_health_view),
            name="notifications_provider_health",
        )
        return [health, *super().get_urls()]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        allowed = request.user.has_perm(PROVIDER_HEALTH_PERMISSION)
        extra_context = {
            **(extra_context or {}),
            "provider_health_url": reverse("admin:notifications_provider_health") if allowed else None,
        }
        return super().changelist_view(request, extra_context)

    @admin_permission_required([PROVIDER_HEALTH_PERMISSION])
    def provider_health_view(self, request: HttpRequest) -> HttpResponse:
        hours = int(request.GET.get("hours", "24") or 24)
        since = timezone.now() - timedelta(hours=max(1, min(hours, 24 * 30)))
        context = {
            **self.admin_site.each_context(request),
            "title": "Provider health",
            "opts": self.model._meta,
            "hours": hours,
            "providers": selectors.provider_health(since=since),
        }
        return TemplateResponse(request, "admin/notifications/provider_health.html", context)


@admin.register(ProviderAttempt)
class ProviderAttemptAdmin(admin.ModelAdmin):
    list_display = ["created_at", "provider", "channel", "outcome", "latency_ms", "delivery_link", "error"]
    list_filter = ["provider", "channel", "outcome"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ProviderAttempt | None = None) -> bool:
        return False

    @admin.display(description="Delivery")
    def delivery_link(self, attempt: ProviderAttempt) -> str:
        url = reverse("admin:interventions_delivery_change", args=[attempt.delivery_id])
        return format_html('<a href="{}">{}</a>', url, str(attempt.delivery_id)[:8])
