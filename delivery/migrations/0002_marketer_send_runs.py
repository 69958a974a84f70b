"""Marketers may look at send runs and pause, resume or cancel them (intervention_engine/roles.py says the
same for new databases); existing databases grant it here, to the "marketer" group if it exists."""

from typing import Any

from django.db import migrations

CODENAMES = ("view_sendrun", "control_sendrun")


def grant(apps: Any, schema_editor: Any) -> None:
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after the whole migrate run; this migration needs them now.
    app_config = apps.get_app_config("delivery")
    models_module = getattr(app_config, "models_module", None)
    app_config.models_module = models_module or True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = models_module

    group = apps.get_model("auth", "Group").objects.filter(name="marketer").first()
    if group is not None:
        permissions = apps.get_model("auth", "Permission").objects.filter(
            content_type__app_label="delivery", codename__in=CODENAMES
        )
        group.permissions.add(*permissions)


def revoke(apps: Any, schema_editor: Any) -> None:
    group = apps.get_model("auth", "Group").objects.filter(name="marketer").first()
    if group is not None:
        permissions = apps.get_model("auth", "Permission").objects.filter(
            content_type__app_label="delivery", codename__in=CODENAMES
        )
        group.permissions.remove(*permissions)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("campaigns", "0002_marketer_group"),
        ("delivery", "0001_initial"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
