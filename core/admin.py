"""Admin base classes every app's admin builds on, and the permission check of custom admin views."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.contrib import admin
from django.core.exceptions import PermissionDenied
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


# What a custom admin view needs: a function of the request and the URL's keyword arguments (a view whose
# method or action decides) returning "app_label.codename" permissions, all of which are required.
ViewPermissions = Callable[..., Sequence[str]]
View = TypeVar("View", bound=Callable[..., Any])


def admin_permission_required(permissions: Sequence[str] | ViewPermissions) -> Callable[[View], View]:
    """Declares what a custom admin view needs, and answers 403 to a user who lacks any of it.

    Every view an admin adds beside Django's own (``get_urls``, the site's pages, the report pages) wears
    this, so the permission is read where the view is written, and
    tests/intervention_engine/test_admin_permissions.py finds any admin view that declares nothing (the
    declaration stays on the view as ``required_permissions``, always the function form). Anonymous users
    never get here: ``admin_site.admin_view`` sends them to the login page first.
    """
    needed: ViewPermissions
    if callable(permissions):
        needed = permissions
    else:
        fixed = tuple(permissions)

        def needed(request: HttpRequest, **url_kwargs: Any) -> Sequence[str]:
            return fixed

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            request = args[-1]  # view(request, ...) or, on a ModelAdmin or the site, view(self, request, ...)
            if not request.user.has_perms(needed(request, **kwargs)):
                raise PermissionDenied
            return view(*args, **kwargs)

        checked.required_permissions = needed  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return decorate
