"""The back office's roles as of today's models, for bootstrap and tests that recreate them after a flush.

The migration that created the "marketer" group (campaigns/0002) names the models as they were then.
"""

from __future__ import annotations

import importlib

from django.apps import apps

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
    ("interventions", "intervention"): VIEW,
    ("interventions", "delivery"): VIEW,
    ("campaigns", "auditentry"): VIEW,
    ("tracking", "trackingevent"): VIEW,
    ("tracking", "conversion"): VIEW,
    ("delivery", "sendrun"): ("view", "control"),
}


def marketer_group_ensure() -> None:
    """Create the "marketer" group if missing and give it exactly :data:`MARKETER_PERMISSIONS`."""
    migration = importlib.import_module("campaigns.migrations.0002_marketer_group")
    migration.ensure_marketer_group(apps, permissions=MARKETER_PERMISSIONS)
