"""The foreign keys follow Intervention and Delivery to the interventions app; state only."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('interventions', '0001_initial'),
        ('tracking', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='conversion',
                    name='intervention',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='conversions', to='interventions.intervention'),
                ),
                migrations.AlterField(
                    model_name='trackingevent',
                    name='delivery',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='interventions.delivery'),
                ),
                migrations.AlterField(
                    model_name='trackingevent',
                    name='intervention',
                    field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='tracking_events', to='interventions.intervention'),
                ),
            ],
            database_operations=[],
        ),
    ]
