from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from api.models import ApiKey, Scope
from api.services import api_key_create, api_key_revoke


class ApiKeyCreationForm(forms.ModelForm):
    # Nothing ticked: a key gets the scopes the operator chooses, never every scope by default.
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ["name", "scopes"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    actions = ["revoke"]
    readonly_fields = ["name", "prefix", "scopes", "created_by", "created_at", "last_used_at", "revoked_at"]

    def get_form(
        self, request: HttpRequest, obj: ApiKey | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = ApiKeyCreationForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        # A key is created once and then only revoked: its scopes are part of what was handed out.
        return [] if obj is None else list(self.readonly_fields)

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        return ["name", "scopes"] if obj is None else list(self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            return
        created, raw_key = api_key_create(
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            created_by=request.user if request.user.is_authenticated else None,
        )
        obj.pk = created.pk
        obj.refresh_from_db()
        self.message_user(
            request,
            f"API key created. Copy it now, it will not be shown again: {raw_key}",
            level=messages.WARNING,
        )

    # Revoking writes the key's revoked_at; a key's fields are otherwise read-only once created, so
    # "change API key" means exactly this.
    @admin.action(description="Revoke the selected API keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key)
        self.message_user(request, "Revoked.", level=messages.SUCCESS)
