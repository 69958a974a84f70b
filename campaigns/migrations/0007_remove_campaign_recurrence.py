"""The free-text ``recurrence`` goes, after 0006 converted it (its own transaction: PostgreSQL does not
alter a table with the deferred foreign-key checks of 0006's audit entries still pending)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0006_campaign_schedule_cron")]

    operations = [migrations.RemoveField(model_name="campaign", name="recurrence")]
