"""The "marketer" group: manages campaigns, variants, templates and segments; looks at the rest.

No access to API keys, users, groups or Celery beat: those are operators' tools. Idempotent: running it
again sets exactly these permissions. The models named are those of this migration's time; today's
labels are in intervention_engine/roles.py.
"""

from typing import Any

from django.db import migrations

MANAGE = ("add", "change", "delete", "view")
VIEW = ("view",)

MARKETER_PERMISSIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("campaigns", "campaign"): MANAGE,
    ("campaigns", "variant"): MANAGE,
    ("campaigns", "template"): MANAGE,
    ("campaigns", "templatelocalization"): MANAGE,
    ("personalization", "segment"): MANAGE,
    ("personalization", "profile"): VIEW,
    ("personalization", "pushtoken"): VIEW,
    ("campaigns", "intervention"): VIEW,
    ("campaigns", "delivery"): VIEW,
    ("campaigns", "auditentry"): VIEW,
    ("tracking", "trackingevent"): VIEW,
    ("tracking", "conversion"): VIEW,
}


def ensure_marketer_group(
    apps: Any,
    schema_editor: Any = None,
    *,
    permissions: dict[tuple[str, str], tuple[str, ...]] = MARKETER_PERMISSIONS,
) -> None:
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after the whole migrate run; this migration needs them now.
    for app_config in apps.get_app_configs():
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = models_module or True  # migration state apps have none
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = models_module

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="marketer")
    codenames = {
        (app_label, f"{action}_{model}")
        for (app_label, model), actions in permissions.items()
        for action in actions
    }
    permissions = [
        permission
        for permission in Permission.objects.select_related("content_type").filter(
            content_type__app_label__in={app_label for app_label, _ in codenames},
            codename__in={codename for _, codename in codenames},
        )
        if (permission.content_type.app_label, permission.codename) in codenames
    ]
    group.permissions.set(permissions)


def remove_marketer_group(apps: Any, schema_editor: Any) -> None:
    apps.get_model("auth", "Group").objects.filter(name="marketer").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("campaigns", "0001_initial"),
        ("personalization", "0001_initial"),
        ("tracking", "0001_initial"),
    ]

    operations = [migrations.RunPython(ensure_marketer_group, remove_marketer_group)]
