"""Every admin action and every custom admin view, walked as a marketer and as a read-only user.

The walk is programmatic: the actions come from each registered ModelAdmin, the views from the URL
configuration under ``admin/``. A new action without ``@admin.action(permissions=[...])``, or a new view
without ``core.admin.admin_permission_required`` (or without a line in ``VIEW_CALLS`` saying how to call
it), fails here.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.options import ModelAdmin
from django.contrib.auth import get_permission_codename
from django.contrib.auth.models import AnonymousUser, Permission, User
from django.contrib.contenttypes.views import shortcut
from django.db.models import Model
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.views.generic import RedirectView
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from api.models import ApiKey
from api.services import api_key_create
from campaigns.services import segment_create
from interventions.models import Delivery, Intervention
from messaging.models import OutboxMessage
from personalization.models import Profile
from tests import fixtures as f
from tests.messaging.kafka_topics import isolate_topics

pytestmark = pytest.mark.django_db

STANDARD_PERMISSIONS = {"add", "change", "delete", "view"}

# Django's own admin pages, which check the model's permissions themselves.
SITE_VIEWS = {
    "index",
    "login",
    "logout",
    "password_change",
    "password_change_done",
    "i18n_javascript",
    "app_index",
    "catch_all_view",
    "autocomplete_view",
}
MODEL_VIEWS = {"changelist_view", "add_view", "history_view", "delete_view", "change_view"}
# Custom views that come with a library and check their permission in their own code.
LIBRARY_VIEWS: dict[str, Sequence[str]] = {"admin:auth_user_password_change": ("auth.change_user",)}

_numbers = itertools.count(1)


# --- Given: the users and one row of everything an action can act on ---------------------------------------


def _staff(name: str, permissions: Sequence[str] = ()) -> User:
    user = User.objects.create_user(
        f"{name}-{next(_numbers)}", password="a-long-test-password", is_staff=True
    )
    for permission in permissions:
        app_label, codename = permission.split(".", 1)
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return User.objects.get(pk=user.pk)  # a fresh object: no cached permissions


@pytest.fixture
def read_only() -> User:
    """Staff with the view permission on every model, and nothing else."""
    views = Permission.objects.filter(codename__startswith="view_").select_related("content_type")
    return _staff("viewer", [f"{p.content_type.app_label}.{p.codename}" for p in views])


@dataclass
class World:
    campaign_id: int
    user_id: int


@pytest.fixture
def world() -> World:
    campaign = f.campaign()
    segment_create(name="Loyal", rules="orders_count >= 3", actor_label="test")
    profile = Profile.objects.create(user_id="u-walk", email="walk@example.com")
    intervention = Intervention.objects.create(
        campaign=campaign,
        profile=profile,
        user_id=profile.user_id,
        trigger_event_id="e-walk",
        trigger="prediction.cart_abandonment",
        channel="email",
    )
    Delivery.objects.create(intervention=intervention, channel="email", status="unknown", attempts=1)
    api_key_create(name="shop", scopes=["events"])
    every_hour = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS)
    PeriodicTask.objects.create(name="relay", task="messaging.tasks.relay", interval=every_hour, enabled=True)
    OutboxMessage.objects.create(topic="intervention-events", key="u-walk", payload={"a": 1})
    return World(campaign_id=campaign.pk, user_id=User.objects.create_user("someone").pk)


def _snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row of every model the admin shows: what a refused request must leave as it was."""
    return {
        model._meta.label: list(model._default_manager.order_by("pk").values())
        for model in admin.site._registry
    }


# --- Actions -------------------------------------------------------------------------------------------


def _registered() -> list[tuple[type[Model], ModelAdmin]]:
    return sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def _actions(model_admin: ModelAdmin) -> list[tuple[str, Callable[..., Any]]]:
    """The site-wide actions and the admin's own, whoever asks (``get_actions`` filters by permission)."""
    if model_admin.actions is None:
        return []
    wanted = [*(name for name, _ in admin.site.actions), *model_admin.actions]
    found = [model_admin.get_action(action) for action in wanted]
    return [(name, function) for function, name, _ in filter(None, found)]


def _every_action() -> Iterator[tuple[type[Model], ModelAdmin, str, Callable[..., Any]]]:
    for model, model_admin in _registered():
        for name, function in _actions(model_admin):
            yield model, model_admin, name, function


def _permission(model: type[Model], permission: str) -> str:
    """The "app_label.codename" an action's declared permission stands for."""
    opts = model._meta
    if permission in STANDARD_PERMISSIONS:
        return f"{opts.app_label}.{get_permission_codename(permission, opts)}"
    return f"{opts.app_label}.{permission}"  # a Meta permission, checked by has_<name>_permission


def _declared_by(function: Callable[..., Any]) -> tuple[str, ...]:
    """What ``@admin.action(permissions=[...])`` declared (nothing, if the action has no decorator)."""
    return tuple(getattr(function, "allowed_permissions", ()))


def _action_permissions(model: type[Model], function: Callable[..., Any]) -> list[str]:
    return [_permission(model, p) for p in _declared_by(function)]


def _offered(user: User, model_admin: ModelAdmin) -> set[str]:
    request = RequestFactory().get("/admin/")
    request.user = user
    return set(model_admin.get_actions(request))


def test_every_action_declares_a_permission_that_exists():
    walked = 0
    for model, model_admin, name, function in _every_action():
        declared = _declared_by(function)
        assert declared, f"{model._meta.label} action {name!r} declares no permission"
        for permission in declared:
            assert hasattr(model_admin, f"has_{permission}_permission"), (model._meta.label, name)
            if permission not in STANDARD_PERMISSIONS:
                assert permission in [c for c, _ in model._meta.permissions], (model._meta.label, name)
        walked += 1
    assert walked >= 12  # the walk found the actions (delete_selected, campaigns, deliveries, keys, beat)


@pytest.mark.parametrize("who", ["marketer", "read_only"])
def test_an_action_is_offered_only_to_a_user_with_its_permission(who, request):
    user = request.getfixturevalue(who)
    for model, model_admin, name, function in _every_action():
        if name in _offered(user, model_admin):
            assert user.has_perms(_action_permissions(model, function)), (who, model._meta.label, name)
            if who == "read_only":
                assert set(_declared_by(function)) == {"view"}, (model._meta.label, name)


def test_the_operator_actions_are_offered_to_neither_a_marketer_nor_a_viewer(marketer, read_only):
    for user in (marketer, read_only):
        assert not _offered(user, admin.site._registry[Delivery]) & {"retry", "mark_resolved"}
        assert "revoke" not in _offered(user, admin.site._registry[ApiKey])
        assert not _offered(user, admin.site._registry[PeriodicTask])


def test_an_action_is_offered_to_a_user_with_exactly_its_permission():
    for model, model_admin, name, function in _every_action():
        if name == "delete_selected":
            continue  # the site's own; the read-only admins refuse deleting to everyone
        holder = _staff("holder", [*_action_permissions(model, function), _permission(model, "view")])
        assert name in _offered(holder, model_admin), (model._meta.label, name)


@pytest.mark.parametrize("who", ["marketer", "read_only"])
def test_an_action_posted_without_its_permission_changes_nothing(who, request, client, world):
    user = request.getfixturevalue(who)
    client.force_login(user)
    refused = 0
    for model, _, name, function in _every_action():
        if user.has_perms(_action_permissions(model, function)):
            continue
        changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        selected = [str(pk) for pk in model._default_manager.values_list("pk", flat=True)]
        before = _snapshot()

        response = client.post(changelist, {"action": name, "_selected_action": selected, "post": "yes"})

        assert response.status_code in (200, 302, 403), (model._meta.label, name)
        assert _snapshot() == before, (who, model._meta.label, name)
        refused += 1
    assert refused >= 6


# --- Custom views ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


# How to call each custom admin view: a new view needs a line here.
VIEW_CALLS: dict[str, Callable[[World], list[Call]]] = {
    "admin:dead_letters": lambda w: [Call("GET"), Call("POST", data={"position": ["0:0"]})],
    "admin:notifications_provider_health": lambda w: [Call("GET")],
    "admin:campaigns_campaign_status": lambda w: [
        Call("POST", {"object_id": w.campaign_id, "action": action})
        for action in ("activate", "pause", "complete", "archive", "duplicate")
    ],
    "admin:campaigns_campaign_schedule_preview": lambda w: [Call("GET")],
    "admin-campaign-report": lambda w: [Call("GET", {"campaign_id": w.campaign_id})],
    "admin-campaigns-overview": lambda w: [Call("GET")],
    "admin-raw-export": lambda w: [
        Call("GET", {"kind": kind, "file_format": f})
        for kind in ("interventions", "deliveries", "events", "conversions")
        for f in ("csv", "xlsx")
    ],
    "admin-reports-export": lambda w: [Call("GET", {"file_format": f}) for f in ("csv", "xlsx")],
    "admin:auth_user_password_change": lambda w: [Call("GET", {"id": w.user_id})],
}


def _admin_patterns(
    patterns: Sequence[URLPattern | URLResolver], route: str = "", namespace: str = ""
) -> Iterator[tuple[str, str, Callable[..., Any]]]:
    for pattern in patterns:
        here = route + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _admin_patterns(pattern.url_patterns, here, inner)
        elif here.lstrip("^").startswith("admin/"):
            yield f"{namespace}{pattern.name}", here, pattern.callback


def _layers(callback: Callable[..., Any]) -> Iterator[Any]:
    """The view and what each of its decorators wraps, down to the function written."""
    layer: Any = callback
    while layer is not None:
        yield layer
        layer = getattr(layer, "__wrapped__", None)


def _is_djangos_own(callback: Callable[..., Any]) -> bool:
    for layer in _layers(callback):
        owner = getattr(layer, "__self__", None)
        name = getattr(layer, "__name__", "")
        if (
            (isinstance(owner, admin.AdminSite) and name in SITE_VIEWS)
            or (isinstance(owner, ModelAdmin) and name in MODEL_VIEWS)
            or getattr(layer, "view_class", None) is RedirectView
            or layer is shortcut
        ):
            return True
    return False


def _declared(callback: Callable[..., Any]) -> Callable[..., Sequence[str]] | None:
    for layer in _layers(callback):
        found = getattr(layer, "required_permissions", None)
        if found is not None:
            return found  # type: ignore[no-any-return]
    return None


def _custom_views() -> dict[str, Callable[..., Sequence[str]]]:
    """Every admin view beside Django's own pages, with the permissions it declares."""
    views: dict[str, Callable[..., Sequence[str]]] = {}
    for name, route, callback in _admin_patterns(get_resolver().url_patterns):
        if _is_djangos_own(callback):
            continue
        if name in LIBRARY_VIEWS:
            views[name] = lambda request, _needed=LIBRARY_VIEWS[name], **kwargs: _needed
            continue
        declared = _declared(callback)
        assert declared is not None, f"the admin view {name} ({route}) declares no permission"
        views[name] = declared
    return views


def test_every_custom_admin_view_declares_its_permission_and_is_walked_here():
    views = _custom_views()

    assert set(views) == set(VIEW_CALLS)


def _needed(declared: Callable[..., Sequence[str]], call: Call) -> list[str]:
    request = getattr(RequestFactory(), call.method.lower())("/admin/")
    return list(declared(request, **call.kwargs))


def _send(client: Client, name: str, call: Call) -> Any:
    url = reverse(name, kwargs=call.kwargs)
    return client.post(url, call.data) if call.method == "POST" else client.get(url)


@pytest.mark.kafka
def test_every_custom_admin_view_answers_only_a_user_with_its_permission(
    settings, world, marketer, read_only
):
    isolate_topics(settings)  # the dead-letter page reads an empty topic of its own
    walked = 0
    for name, declared in sorted(_custom_views().items()):
        for call in VIEW_CALLS[name](world):
            needed = _needed(declared, call)
            if call.method == "POST":  # a POST changes something: looking is never enough
                assert any(not p.split(".", 1)[1].startswith("view_") for p in needed), (name, call)
            holder = _staff("holder", needed)
            users: tuple[tuple[str, User | AnonymousUser], ...] = (
                ("anonymous", AnonymousUser()),
                ("marketer", marketer),
                ("read_only", read_only),
                ("holder", holder),
            )
            for who, user in users:
                client = Client()
                if isinstance(user, User):
                    client.force_login(user)
                allowed = user.has_perms(needed)
                before = _snapshot()

                response = _send(client, name, call)

                where = (name, call, who)
                if who == "anonymous":
                    assert response.status_code == 302, where
                    assert response["Location"].startswith(reverse("admin:login")), where
                elif not allowed:
                    assert response.status_code == 403, where
                elif call.method == "GET":
                    assert response.status_code == 200, where
                else:
                    assert response.status_code == 302, where
                if not allowed:
                    assert _snapshot() == before, where
                walked += 1
    assert walked >= 4 * 11
    assert read_only.has_perms(["messaging.view_outboxmessage", "notifications.view_providerattempt"])
