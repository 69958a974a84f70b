"""Intervention and Delivery now belong to the interventions app (interventions/0001): campaigns forgets
them in Django's state only; their tables stay as they are."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0004_hot_path_indexes"),
        ("interventions", "0001_initial"),
        ("tracking", "0002_interventions_move"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name="delivery", name="intervention"),
                migrations.RemoveField(model_name="intervention", name="campaign"),
                migrations.RemoveField(model_name="intervention", name="profile"),
                migrations.RemoveField(model_name="intervention", name="variant"),
                migrations.DeleteModel(name="Delivery"),
                migrations.DeleteModel(name="Intervention"),
            ],
            database_operations=[],
        ),
    ]
