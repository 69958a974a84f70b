"""Scheduled campaigns: the free-text ``recurrence`` becomes a validated ``cron`` (with its time zone).

Every scheduled campaign with something to convert gets an audit entry saying what happened to it:
a valid five-field expression (or @hourly/@daily/@weekly/@monthly) is kept as ``cron``; anything else is
refused, and its text is kept in the audit entry. Nothing was ever sent for a scheduled campaign before
this change, so an active one is paused here (with the reason in its audit entry): activating it again
validates its schedule and creates its beat entry, instead of it starting to send on deploy.
"""

from django.db import migrations, models

_ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


def _cron(text):
    """(cron, None) when ``text`` is a cron expression, (None, reason) otherwise."""
    from celery.schedules import crontab

    text = _ALIASES.get(text.strip().lower(), text.strip())
    fields = text.split()
    if len(fields) != 5:
        return None, f"five fields are needed, {len(fields)} given"
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    try:
        crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
        )
    except ValueError as exc:
        return None, str(exc)
    return " ".join(fields), None


def recurrence_to_cron(apps, schema_editor):
    Campaign = apps.get_model("campaigns", "Campaign")
    AuditEntry = apps.get_model("campaigns", "AuditEntry")
    ContentType = apps.get_model("contenttypes", "ContentType")
    content_type, _ = ContentType.objects.get_or_create(app_label="campaigns", model="campaign")
    for campaign in Campaign.objects.filter(kind="scheduled").order_by("pk"):
        changes = {}
        if campaign.recurrence.strip():
            cron, reason = _cron(campaign.recurrence)
            if cron is not None:
                campaign.cron = cron
                changes["cron"] = ["", cron]
                if campaign.send_at is not None:
                    # A recurring campaign runs on its cron alone (a one-off time beside it is refused).
                    changes["send_at"] = [campaign.send_at.isoformat(), None]
                    campaign.send_at = None
            else:
                changes["recurrence_refused"] = [campaign.recurrence, f"not a cron expression: {reason}"]
        if campaign.status == "active":
            changes["status"] = ["active", "paused"]
            changes["reason"] = "scheduled campaigns never sent before; activate again to validate and schedule"
            campaign.status = "paused"
        if not changes:
            continue
        campaign.save(update_fields=["cron", "send_at", "status"])
        AuditEntry.objects.create(
            actor=None,
            actor_label="migration campaigns.0006",
            action="campaign.schedule_migrated",
            content_type=content_type,
            object_id=str(campaign.pk),
            object_repr=campaign.name[:300],
            changes=changes,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0005_interventions_move"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AddField(
            model_name="campaign",
            name="cron",
            field=models.CharField(
                blank=True,
                help_text='Recurring: "minute hour day-of-month month day-of-week", e.g. "0 9 * * 1" (Mondays '
                "09:00); empty for a one-off",
                max_length=100,
            ),
        ),
        migrations.AddField(
            model_name="campaign",
            name="schedule_timezone",
            field=models.CharField(
                default="UTC", help_text="The time zone the cron expression is read in", max_length=64
            ),
        ),
        migrations.AlterField(
            model_name="campaign",
            name="send_at",
            field=models.DateTimeField(blank=True, help_text="One-off: when the run starts", null=True),
        ),
        migrations.AlterField(
            model_name="campaign",
            name="send_local_time",
            field=models.TimeField(
                blank=True, help_text="Each shopper's wall-clock time; empty sends at the run's start", null=True
            ),
        ),
        migrations.RunPython(recurrence_to_cron, migrations.RunPython.noop),
    ]
