"""The marketers' back office: templates, segments, campaigns and what they produced.

The admin is thin. Forms ask the domain (``personalization.rules``, ``campaigns.services``) whether
rules and content are acceptable, so the error lands on the right field; saves, status changes and
duplication go through the campaign services (the same ones the API calls), which validate, write, audit
with the field-level changes and notify the decision path in one transaction. Whatever a service refuses,
its ``ApplicationError.message`` is what the marketer reads. See docs/admin.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from weakref import WeakKeyDictionary

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import RelatedFieldWidgetWrapper
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from campaigns.admin_fields import ExitEventsField, OrderedChannelsField
from campaigns.admin_views import campaign_schedule_preview, campaign_schedule_preview_answer
from campaigns.models import (
    AuditEntry,
    Campaign,
    Template,
    TemplateLocalization,
    Variant,
)
from campaigns.selectors import audit_entries_for, campaign_get, template_get
from campaigns.services import (
    ALLOWED_TRANSITIONS,
    CAMPAIGN_FIELDS,
    LOCALIZATION_FIELDS,
    READ_ONLY_STATUSES,
    SEGMENT_FIELDS,
    TEMPLATE_FIELDS,
    VARIANT_FIELDS,
    audit_record,
    campaign_activate,
    campaign_archive,
    campaign_complete,
    campaign_create,
    campaign_duplicate,
    campaign_pause,
    campaign_update,
    segment_create,
    segment_update,
    template_create,
    template_localization_for,
    template_render,
    template_update,
    template_validate,
)
from core.admin import ReadOnlyModelAdmin, admin_permission_required, status_badge
from core.errors import ApplicationError
from personalization.models import CHANNELS, Channel, Segment
from personalization.rendering import TemplateRenderError, sample_context
from personalization.rules import RuleError, validate_rule
from personalization.selectors import segment_estimate_size, segment_recent_members

# --- Saving through the services ------------------------------------------------------------------------

# A refusal raised by a service while the admin saves, kept for the second pass of the same request.
_refusals: WeakKeyDictionary[HttpRequest, ApplicationError] = WeakKeyDictionary()


def _actor_label(request: HttpRequest) -> str:
    return request.user.get_username()


def _actor(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _show_refusal(form: forms.BaseForm, error: ApplicationError) -> None:
    """Put the service's message on the fields it names, or above the form."""
    placed = False
    for name, problems in error.details.items():
        if name in form.fields:
            texts = problems if isinstance(problems, list) and problems else [error.message]
            for text in texts:
                form.add_error(name, str(text))
            placed = True
    if not placed:
        form.add_error(None, error.message)


def _mark_formsets_saved(formsets: Iterable[Any]) -> None:
    # The service saved the inline rows; the admin's change message still reads these attributes.
    for formset in formsets:
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []


def _kept_forms(formset: BaseInlineFormSet) -> list[forms.BaseForm]:
    return [
        form
        for form in formset.forms
        if form.cleaned_data and not (formset.can_delete and form.cleaned_data.get("DELETE"))
    ]


class ServiceBackedAdmin(admin.ModelAdmin):
    """Saves through a service, which validates, writes and audits in one transaction.

    The admin's own validation cannot see every rule (an active campaign must stay runnable, a completed
    one is read-only), so when the service refuses during the save, the admin's transaction rolls back
    and the same POST is shown again with the service's message on the fields it names.
    """

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ApplicationError as error:
            if request.method != "POST" or request in _refusals:
                raise
            _refusals[request] = error
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form_class = super().get_form(request, obj, change, **kwargs)
        found = _refusals.get(request)
        if found is None:
            return form_class
        refusal: ApplicationError = found

        class RefusedForm(form_class):  # type: ignore[valid-type,misc]
            def clean(self) -> dict[str, Any]:
                cleaned: dict[str, Any] = super().clean()
                _show_refusal(self, refusal)
                return cleaned

        return RefusedForm

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        # Deleting has no rule of its own beyond the database's protections; it is still audited.
        audit_record(
            actor=_actor(request),
            actor_label=_actor_label(request),
            action=f"{obj._meta.model_name}.deleted",
            obj=obj,
            changes={"name": [str(obj), None]},
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


_AUDIT_CHANGES_SHOWN = 6


def _audit_rows(obj: models.Model, *, limit: int = 15) -> list[dict[str, Any]]:
    entries = audit_entries_for(obj=obj)[:limit]
    rows = []
    for entry in entries:
        changes = _describe_changes(entry.changes)
        if len(changes) > _AUDIT_CHANGES_SHOWN:
            hidden = len(changes) - _AUDIT_CHANGES_SHOWN
            changes = [*changes[:_AUDIT_CHANGES_SHOWN], ("", f"… and {hidden} more")]
        rows.append({"entry": entry, "changes": changes})
    return rows


def _describe_changes(changes: Any) -> list[tuple[str, str]]:
    """(field, "before → after") pairs, whatever the nesting of the recorded changes."""
    if not isinstance(changes, dict):
        return [("", str(changes))]
    described = []
    for name, value in changes.items():
        if isinstance(value, dict) and set(value) <= {"old", "new", "before", "after"}:
            old = value.get("old", value.get("before"))
            new = value.get("new", value.get("after"))
            described.append((name, f"{_short(old)} → {_short(new)}"))
        elif isinstance(value, list | tuple) and len(value) == 2:
            described.append((name, f"{_short(value[0])} → {_short(value[1])}"))
        else:
            described.append((name, _short(value)))
    return described


def _short(value: Any, limit: int = 80) -> str:
    text = "∅" if value in (None, "") else str(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


# --- Previews -------------------------------------------------------------------------------------------


@dataclass
class ChannelPreview:
    channel: str
    template: Template
    locale_used: str = ""
    content: dict[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass
class VariantPreview:
    variant: Variant
    channels: list[ChannelPreview]


def _channel_preview(
    *, template: Template, channel: str, locale: str, context: dict[str, Any]
) -> ChannelPreview:
    preview = ChannelPreview(channel=channel, template=template)
    try:
        localization = template_localization_for(template=template, locale=locale)
        preview.locale_used = localization.locale if localization is not None else ""
        preview.content = dict(template_render(template=template, locale=locale, context=context))
    except ApplicationError as error:  # TemplateRenderError's message names the field and line
        preview.error = error.message
    return preview


def _preview_context(
    *, locale: str, campaign: Campaign | None = None, variant: Variant | None = None
) -> dict[str, Any]:
    context = dict(sample_context(locale=locale))
    # Live, a per-shopper code may replace the template's; the preview shows what the marketer wrote.
    context.pop("discount_code", None)
    # The sample shopper sees this campaign, so names in the content resolve as they will live.
    if campaign is not None and isinstance(context.get("campaign"), dict):
        context["campaign"] = {**context["campaign"], "id": campaign.pk, "name": campaign.name}
    if variant is not None and isinstance(context.get("variant"), dict):
        context["variant"] = {**context["variant"], "id": variant.pk, "name": variant.name}
    return context


def _ordered_channels(campaign: Campaign) -> list[str]:
    chosen = [c for c in (campaign.channels or []) if c in CHANNELS]
    return [*chosen, *(c for c in CHANNELS if c not in chosen)]


def campaign_previews(*, campaign: Campaign, locale: str) -> list[VariantPreview]:
    """Every variant's content per channel; ``campaign`` comes from ``campaign_get`` (all prefetched)."""
    previews = []
    for variant in campaign.variants.all():
        context = _preview_context(campaign=campaign, variant=variant, locale=locale)
        channels = [
            _channel_preview(template=template, channel=channel, locale=locale, context=context)
            for channel in _ordered_channels(campaign)
            if (template := variant.template_for(channel)) is not None
        ]
        previews.append(VariantPreview(variant=variant, channels=channels))
    return previews


def _selected_locale(request: HttpRequest, available: Sequence[str], default: str) -> str:
    wanted = request.GET.get("locale", "")
    return wanted if wanted in available else default


# --- Templates ------------------------------------------------------------------------------------------


def _localization_data(form: forms.BaseForm) -> dict[str, str]:
    return {name: str(form.cleaned_data.get(name) or "") for name in ("locale", *LOCALIZATION_FIELDS)}


class TemplateLocalizationFormSet(BaseInlineFormSet):
    """Asks ``template_validate`` about each localization (so the error lands on the right locale's
    field, with its line) and then about all of them together (duplicate locales, none at all)."""

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        kept = _kept_forms(self)
        for form in kept:
            try:
                template_validate(template=self.instance, localizations=[_localization_data(form)])
            except TemplateRenderError as error:
                form.add_error(error.field if error.field in form.fields else None, error.message)
        if any(self.errors):
            raise ValidationError("The template cannot be saved: fix the content marked below.")
        try:
            template_validate(template=self.instance, localizations=[_localization_data(f) for f in kept])
        except ApplicationError as error:
            raise ValidationError(error.message) from error


class TemplateLocalizationInline(admin.StackedInline):
    model = TemplateLocalization
    formset = TemplateLocalizationFormSet
    extra = 0
    min_num = 1
    fields = (
        "locale",
        "subject",
        "body_text",
        "body_html",
        ("cta_label", "cta_url"),
        ("image_url", "discount_code"),
    )

    def get_fields(self, request: HttpRequest, obj: Template | None = None) -> Any:
        # Only email has an HTML body; offering it elsewhere invites content the service refuses.
        if obj is not None and obj.channel != "email":
            return tuple(f for f in self.fields if f != "body_html")
        return self.fields


@admin.register(Template)
class TemplateAdmin(ServiceBackedAdmin):
    list_display = ("name", "channel", "onsite_kind", "default_locale", "locales", "updated_at")
    list_filter = ("channel", "onsite_kind", "default_locale")
    search_fields = ("name", "description")
    ordering = ("name",)
    inlines = [TemplateLocalizationInline]
    change_form_template = "admin/campaigns/template/change_form.html"
    fields = TEMPLATE_FIELDS

    def get_queryset(self, request: HttpRequest) -> QuerySet[Template]:
        return super().get_queryset(request).prefetch_related("localizations")

    @admin.display(description="locales")
    def locales(self, obj: Template) -> SafeString:
        return format_html_join(
            "", '<span class="ie-chip">{}</span>', ((loc.locale,) for loc in obj.localizations.all())
        )

    def save_model(self, request: HttpRequest, obj: Template, form: forms.ModelForm, change: bool) -> None:
        # Saved with its localizations in save_related, where the inline's rows are known.
        pass

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool) -> None:
        data = {name: form.cleaned_data[name] for name in TEMPLATE_FIELDS if name in form.cleaned_data}
        localizations = [
            _localization_data(f)
            for formset in formsets
            if isinstance(formset, TemplateLocalizationFormSet)
            for f in _kept_forms(formset)
        ]
        actor, label = _actor(request), _actor_label(request)
        if change:
            saved = template_update(
                template=form.instance, data=data, localizations=localizations, actor_label=label, actor=actor
            )
        else:
            saved = template_create(data=data, localizations=localizations, actor_label=label, actor=actor)
        form.instance.pk = saved.pk
        _mark_formsets_saved(formsets)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        template = template_get(template_id=int(object_id)) if object_id.isdigit() else None
        context = dict(extra_context or {})
        if template is not None:
            available = sorted(
                {loc.locale for loc in template.localizations.all()} | {template.default_locale}
            )
            locale = _selected_locale(request, available, template.default_locale)
            context.update(
                preview=_channel_preview(
                    template=template,
                    channel=template.channel,
                    locale=locale,
                    context=_preview_context(locale=locale),
                ),
                preview_locales=available,
                preview_locale=locale,
                audit_rows=_audit_rows(template),
            )
        return super().change_view(request, object_id, form_url, extra_context=context)


# --- Segments -------------------------------------------------------------------------------------------


class SegmentAdminForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = SEGMENT_FIELDS
        widgets = {"rules": forms.Textarea(attrs={"rows": 3, "class": "ie-code vLargeTextField"})}

    def clean_rules(self) -> str:
        rules: str = self.cleaned_data["rules"]
        try:
            validate_rule(rules, for_segment=True)
        except RuleError as error:
            raise ValidationError(error.message) from error
        return rules


@admin.register(Segment)
class SegmentAdmin(ServiceBackedAdmin):
    form = SegmentAdminForm
    list_display = ("name", "rules_code", "estimated_size", "estimated_at", "updated_at")
    search_fields = ("name", "description", "rules")
    ordering = ("name",)
    readonly_fields = ("estimated_size_now", "some_members")
    fields = (*SEGMENT_FIELDS, "estimated_size_now", "some_members")
    actions = ["estimate_now"]
    change_form_template = "admin/campaigns/segment/change_form.html"

    @admin.display(description="rules")
    def rules_code(self, obj: Segment) -> SafeString:
        return format_html('<code class="ie-code">{}</code>', _short(obj.rules, 120))

    @admin.display(description="shoppers in the segment now")
    def estimated_size_now(self, obj: Segment) -> str:
        if obj.pk is None:
            return "Shown once the segment is saved."
        try:
            return f"{segment_estimate_size(segment=obj):,}"
        except ApplicationError as error:
            return error.message

    @admin.display(description="recently seen members")
    def some_members(self, obj: Segment) -> SafeString | str:
        if obj.pk is None:
            return "Shown once the segment is saved."
        try:
            members = segment_recent_members(segment=obj, limit=10)
        except ApplicationError as error:
            return error.message
        if not members:
            return "Nobody matches yet."
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            ((reverse("admin:personalization_profile_change", args=[pk]), uid) for pk, uid in members),
        )

    def save_model(self, request: HttpRequest, obj: Segment, form: forms.ModelForm, change: bool) -> None:
        data = {name: form.cleaned_data[name] for name in SEGMENT_FIELDS}
        actor, label = _actor(request), _actor_label(request)
        if change:
            segment_update(segment=obj, **data, actor_label=label, actor=actor)
        else:
            obj.pk = segment_create(**data, actor_label=label, actor=actor).pk

    @admin.action(description="Estimate the size of the selected segments now", permissions=["change"])
    def estimate_now(self, request: HttpRequest, queryset: QuerySet[Segment]) -> None:
        for segment in queryset:
            try:
                size = segment_estimate_size(segment=segment)  # also remembers it for the list
            except ApplicationError as error:
                self.message_user(request, f"{segment.name}: {error.message}", messages.ERROR)
                continue
            self.message_user(request, f"{segment.name}: about {size:,} shoppers.", messages.SUCCESS)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        segment = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if segment is not None:
            context["audit_rows"] = _audit_rows(segment)
        return super().change_view(request, object_id, form_url, extra_context=context)


# --- Campaigns --------------------------------------------------------------------------------------------


class CampaignAdminForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = CAMPAIGN_FIELDS
        widgets = {
            "conditions": forms.Textarea(attrs={"rows": 2, "class": "ie-code vLargeTextField"}),
            "description": forms.Textarea(attrs={"rows": 2, "class": "vLargeTextField"}),
        }

    # Pickers in place of JSON text boxes; they store the same lists (campaigns/admin_fields.py).
    channels = OrderedChannelsField(choices=Channel.choices)
    exit_events = ExitEventsField(
        help_text="The shopper leaves the campaign on any of these. A scheduled send honours "
        "checkout_completed: a member who ordered after the run's snapshot is skipped."
    )

    def clean_exit_events(self) -> list[str]:
        # The same events in another order are no change: keep the stored list (and the audit trail quiet).
        chosen: list[str] = self.cleaned_data["exit_events"]
        stored = list(self.instance.exit_events or [])
        return stored if sorted(stored) == sorted(chosen) else chosen

    def clean_conditions(self) -> str:
        conditions: str = self.cleaned_data["conditions"]
        try:
            validate_rule(conditions, for_segment=False)
        except RuleError as error:
            raise ValidationError(error.message) from error
        return conditions


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 0
    fields = VARIANT_FIELDS

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name.endswith("_template"):
            channel = db_field.name.removesuffix("_template")
            kwargs["queryset"] = Template.objects.filter(channel=channel).order_by("name")
            field: Any = super().formfield_for_foreignkey(db_field, request, **kwargs)
            if field is not None:
                # One query per column for the whole page, not one per variant row.
                field.choices = list(field.choices)
            return field
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        # Four template columns with add/change/delete/view icons each do not fit one row; templates
        # are edited on their own page, linked from the preview below.
        if field is not None and isinstance(field.widget, RelatedFieldWidgetWrapper):
            field.widget.can_add_related = field.widget.can_change_related = False
            field.widget.can_delete_related = field.widget.can_view_related = False
        return field


@dataclass(frozen=True)
class StatusAction:
    name: str
    label: str
    to_status: str


STATUS_ACTIONS = (
    StatusAction("activate", "Activate", Campaign.Status.ACTIVE),
    StatusAction("pause", "Pause", Campaign.Status.PAUSED),
    StatusAction("complete", "Complete", Campaign.Status.COMPLETED),
    StatusAction("archive", "Archive", Campaign.Status.ARCHIVED),
)
_TRANSITIONS = {
    "activate": campaign_activate,
    "pause": campaign_pause,
    "complete": campaign_complete,
    "archive": campaign_archive,
}


def _status_action_permissions(request: HttpRequest, *, action: str, **url_kwargs: Any) -> Sequence[str]:
    """Model-level, not per campaign: a completed campaign is read-only yet may still be archived."""
    if action == "duplicate":
        return ("campaigns.add_campaign",)
    return ("campaigns.change_campaign",)


@admin.register(Campaign)
class CampaignAdmin(ServiceBackedAdmin):
    form = CampaignAdminForm
    list_display = (
        "name",
        "status_badge",
        "kind",
        "trigger",
        "channel_list",
        "priority",
        "holdout",
        "segment",
        "updated_at",
    )
    list_filter = ("status", "kind", "channel_strategy", "use_bandit")
    search_fields = ("name", "description", "trigger")
    date_hierarchy = "updated_at"
    list_select_related = ("segment",)
    ordering = ("-priority", "name")
    inlines = [VariantInline]
    change_form_template = "admin/campaigns/campaign/change_form.html"
    readonly_fields = ("status_badge", "created_by", "created_at", "updated_at")
    actions = [
        "activate_selected",
        "pause_selected",
        "complete_selected",
        "archive_selected",
        "duplicate_selected",
    ]
    fieldsets = (
        (None, {"fields": ("name", "description", "status_badge", "kind")}),
        (
            "When it fires",
            {
                "fields": (
                    "trigger",
                    "conditions",
                    "segment",
                    ("delay_seconds", "require_open_cart"),
                    "exit_events",
                    ("starts_at", "ends_at"),
                )
            },
        ),
        (
            "Scheduled sends",
            {
                "fields": (("send_at", "send_local_time"), ("cron", "schedule_timezone")),
                "classes": ("collapse",),
            },
        ),
        (
            "How it reaches the shopper",
            {
                "fields": (
                    ("channels", "channel_strategy"),
                    "priority",
                    ("frequency_cap_count", "frequency_cap_window_seconds"),
                    "cooldown_seconds",
                    "expiry_seconds",
                )
            },
        ),
        (
            "Measurement",
            {
                "fields": (
                    "holdout_percent",
                    ("use_bandit", "bandit_goal"),
                    ("conversion_goal", "attribution_window_seconds"),
                    "minimum_detectable_effect",
                )
            },
        ),
        ("Record", {"fields": (("created_by", "created_at", "updated_at"),), "classes": ("collapse",)}),
    )

    # --- list columns ---

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Campaign) -> SafeString:
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="channels")
    def channel_list(self, obj: Campaign) -> SafeString:
        return format_html_join("", '<span class="ie-chip">{}</span>', ((c,) for c in obj.channels or []))

    @admin.display(description="holdout", ordering="holdout_percent")
    def holdout(self, obj: Campaign) -> str:
        return f"{Decimal(obj.holdout_percent).normalize():f} %"

    # --- editing: completed and archived campaigns are read-only (the service refuses edits) ---

    def has_change_permission(self, request: HttpRequest, obj: Campaign | None = None) -> bool:
        if obj is not None and obj.status in READ_ONLY_STATUSES:
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Campaign, form: forms.ModelForm, change: bool) -> None:
        # Saved with its variants in save_related, where the inline's rows are known.
        pass

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool) -> None:
        data = {name: form.cleaned_data[name] for name in CAMPAIGN_FIELDS if name in form.cleaned_data}
        variants = [
            {name: f.cleaned_data.get(name) for name in VARIANT_FIELDS}
            for formset in formsets
            if formset.model is Variant
            for f in _kept_forms(formset)
        ]
        actor, label = _actor(request), _actor_label(request)
        if change:
            saved = campaign_update(
                campaign=form.instance, data=data, variants=variants, actor_label=label, actor=actor
            )
        else:
            saved = campaign_create(data=data, variants=variants, actor_label=label, actor=actor)
        form.instance.pk = saved.pk
        _mark_formsets_saved(formsets)

    # --- status actions: buttons on the change page and list actions, both through the services ---

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "schedule-preview/",
                self.admin_site.admin_view(self.schedule_preview_view),
                name="campaigns_campaign_schedule_preview",
            ),
            path(
                "<path:object_id>/status/<str:action>/",
                self.admin_site.admin_view(self.status_action_view),
                name="campaigns_campaign_status",
            ),
            *super().get_urls(),
        ]

    def _run(self, request: HttpRequest, campaign: Campaign, action: str) -> Campaign | None:
        """Calls one service; reports success, or the service's refusal, as a message."""
        actor, label = _actor(request), _actor_label(request)
        try:
            if action == "duplicate":
                copy = campaign_duplicate(campaign=campaign, actor_label=label, actor=actor)
                self.message_user(
                    request, f"“{campaign.name}” duplicated as the draft “{copy.name}”.", messages.SUCCESS
                )
                return copy
            updated = _TRANSITIONS[action](campaign=campaign, actor_label=label, actor=actor)
        except ApplicationError as error:  # CampaignTransitionError says which move is refused and why
            self.message_user(request, f"“{campaign.name}”: {error.message}", messages.ERROR)
            return None
        self.message_user(
            request, f"“{campaign.name}” is now {updated.get_status_display().lower()}.", messages.SUCCESS
        )
        return updated

    def _may_run(self, request: HttpRequest, action: str) -> bool:
        return request.user.has_perms(_status_action_permissions(request, action=action))

    @admin_permission_required(_status_action_permissions)
    def status_action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if action not in _TRANSITIONS and action != "duplicate":
            raise Http404("Unknown campaign action")
        campaign = self.get_object(request, object_id)
        if campaign is None:
            raise Http404("No such campaign")
        result = self._run(request, campaign, action)
        target = result if action == "duplicate" and result is not None else campaign
        return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[target.pk]))

    @admin_permission_required(("campaigns.view_campaign",))
    def schedule_preview_view(self, request: HttpRequest) -> HttpResponse:
        """The schedule editor's next runs, from the form's unsaved fields (campaigns/admin_views.py)."""
        return campaign_schedule_preview_answer(request=request, form_class=self.get_form(request))

    def _run_many(self, request: HttpRequest, queryset: QuerySet[Campaign], action: str) -> None:
        for campaign in queryset.order_by("pk"):
            self._run(request, campaign, action)

    @admin.action(description="Activate selected campaigns", permissions=["change"])
    def activate_selected(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._run_many(request, queryset, "activate")

    @admin.action(description="Pause selected campaigns", permissions=["change"])
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._run_many(request, queryset, "pause")

    @admin.action(description="Complete selected campaigns", permissions=["change"])
    def complete_selected(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._run_many(request, queryset, "complete")

    @admin.action(description="Archive selected campaigns", permissions=["change"])
    def archive_selected(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._run_many(request, queryset, "archive")

    @admin.action(description="Duplicate selected campaigns as drafts", permissions=["add"])
    def duplicate_selected(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._run_many(request, queryset, "duplicate")

    # --- the change page: preview, segment size, audit trail ---

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        campaign = campaign_get(campaign_id=int(object_id)) if object_id.isdigit() else None
        context = dict(extra_context or {})
        if campaign is not None:
            locales = {
                localization.locale
                for variant in campaign.variants.all()
                for channel in CHANNELS
                if (template := variant.template_for(channel)) is not None
                for localization in template.localizations.all()
            }
            available = sorted(locales | {"en"})
            locale = _selected_locale(request, available, "en")
            segment_size: int | str | None = None
            if campaign.segment is not None:
                try:
                    segment_size = f"{segment_estimate_size(segment=campaign.segment):,}"
                except ApplicationError as error:
                    segment_size = error.message
            content_type = ContentType.objects.get_for_model(Campaign)
            context.update(
                schedule=campaign_schedule_preview(campaign),
                previews=campaign_previews(campaign=campaign, locale=locale),
                preview_locales=available,
                preview_locale=locale,
                segment_size=segment_size,
                audit_rows=_audit_rows(campaign),
                audit_changelist_url=(
                    reverse("admin:campaigns_auditentry_changelist")
                    + f"?content_type__id__exact={content_type.pk}&object_id={campaign.pk}"
                ),
                status_actions=[
                    (action, action.to_status in ALLOWED_TRANSITIONS[campaign.status])
                    for action in STATUS_ACTIONS
                ],
                can_change_status=self._may_run(request, "activate"),
                can_duplicate=self._may_run(request, "duplicate"),
            )
        return super().change_view(request, object_id, form_url, extra_context=context)


# --- What the system wrote: read-only -----------------------------------------------------------------


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyModelAdmin):
    list_display = ("created_at", "actor_label", "action", "content_type", "object_repr", "change_summary")
    list_filter = ("action", "content_type")
    search_fields = ("actor_label", "object_repr", "=object_id")
    date_hierarchy = "created_at"
    list_select_related = ("content_type",)

    @admin.display(description="changes")
    def change_summary(self, obj: AuditEntry) -> SafeString:
        return format_html_join(
            "", '<span class="ie-chip"><b>{}</b> {}</span> ', _describe_changes(obj.changes)[:6]
        )
