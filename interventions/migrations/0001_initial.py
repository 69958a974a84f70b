"""Intervention and Delivery move here from campaigns: the tables keep their names, so this changes only
Django's state (no table is created, no row is copied). The content types follow the models, so the
permissions granted on them (the marketer group's, anyone's) and the admin's history stay attached.
"""

import django.db.models.deletion
import uuid
from django.db import migrations, models


def _content_types_move(apps, schema_editor, *, source, target):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in ("intervention", "delivery"):
        if not ContentType.objects.filter(app_label=target, model=model).exists():
            ContentType.objects.filter(app_label=source, model=model).update(app_label=target)


def content_types_forward(apps, schema_editor):
    _content_types_move(apps, schema_editor, source="campaigns", target="interventions")


def content_types_backward(apps, schema_editor):
    _content_types_move(apps, schema_editor, source="interventions", target="campaigns")



class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('campaigns', '0004_hot_path_indexes'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('personalization', '0002_profile_hot_updates'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Intervention',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('user_id', models.CharField(max_length=128)),
                        ('session_id', models.CharField(blank=True, max_length=128)),
                        ('cart_id', models.CharField(blank=True, max_length=128)),
                        ('trigger_event_id', models.CharField(max_length=128)),
                        ('trigger', models.CharField(max_length=200)),
                        ('status', models.CharField(choices=[('scheduled', 'Scheduled'), ('pending', 'Pending delivery'), ('delivered', 'Delivered'), ('suppressed', 'Suppressed'), ('cancelled', 'Cancelled'), ('expired', 'Expired'), ('failed', 'Failed')], default='pending', max_length=16)),
                        ('suppression_reason', models.CharField(blank=True, max_length=32)),
                        ('is_holdout', models.BooleanField(default=False)),
                        ('channel', models.CharField(blank=True, choices=[('onsite', 'On-site'), ('email', 'Email'), ('sms', 'SMS'), ('push', 'Push')], max_length=16)),
                        ('content', models.JSONField(blank=True, default=dict)),
                        ('context', models.JSONField(blank=True, default=dict)),
                        ('seq', models.PositiveBigIntegerField(blank=True, help_text='Per-user on-site sequence number', null=True)),
                        ('scheduled_for', models.DateTimeField(blank=True, null=True)),
                        ('expires_at', models.DateTimeField(blank=True, null=True)),
                        ('delivered_at', models.DateTimeField(blank=True, null=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('campaign', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='interventions', to='campaigns.campaign')),
                        ('profile', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='interventions', to='personalization.profile')),
                        ('variant', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='campaigns.variant')),
                    ],
                    options={
                        'db_table': 'campaigns_intervention',
                    },
                ),
                migrations.CreateModel(
                    name='Delivery',
                    fields=[
                        ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ('channel', models.CharField(choices=[('onsite', 'On-site'), ('email', 'Email'), ('sms', 'SMS'), ('push', 'Push')], max_length=16)),
                        ('provider', models.CharField(blank=True, max_length=64)),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('sending', 'Sending'), ('sent', 'Sent'), ('delivered', 'Delivered'), ('failed', 'Failed'), ('unknown', 'Unknown'), ('cancelled', 'Cancelled')], default='queued', max_length=16)),
                        ('attempts', models.PositiveIntegerField(default=0)),
                        ('next_attempt_at', models.DateTimeField(blank=True, null=True)),
                        ('last_error', models.TextField(blank=True)),
                        ('error_kind', models.CharField(blank=True, help_text='transient or permanent', max_length=16)),
                        ('provider_message_id', models.CharField(blank=True, max_length=200)),
                        ('provider_response', models.JSONField(blank=True, default=dict)),
                        ('queued_at', models.DateTimeField(auto_now_add=True)),
                        ('sending_at', models.DateTimeField(blank=True, null=True)),
                        ('sent_at', models.DateTimeField(blank=True, null=True)),
                        ('delivered_at', models.DateTimeField(blank=True, null=True)),
                        ('failed_at', models.DateTimeField(blank=True, null=True)),
                        ('resolved_at', models.DateTimeField(blank=True, null=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('intervention', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='interventions.intervention')),
                    ],
                    options={
                        'verbose_name_plural': 'deliveries',
                        'db_table': 'campaigns_delivery',
                    },
                ),
                migrations.AddIndex(
                    model_name='intervention',
                    index=models.Index(fields=['user_id', 'status'], name='intervention_user_status_idx'),
                ),
                migrations.AddIndex(
                    model_name='intervention',
                    index=models.Index(fields=['campaign', 'variant', 'created_at'], name='intervention_report_idx'),
                ),
                migrations.AddIndex(
                    model_name='intervention',
                    index=models.Index(condition=models.Q(('status', 'scheduled')), fields=['scheduled_for'], name='intervention_due_idx'),
                ),
                migrations.AddConstraint(
                    model_name='intervention',
                    constraint=models.UniqueConstraint(fields=('campaign', 'trigger_event_id'), name='intervention_once_per_event'),
                ),
                migrations.AddConstraint(
                    model_name='intervention',
                    constraint=models.UniqueConstraint(condition=models.Q(('seq__isnull', False)), fields=('user_id', 'seq'), name='intervention_user_seq_unique'),
                ),
                migrations.AddConstraint(
                    model_name='intervention',
                    constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'suppressed'), _negated=True), models.Q(('suppression_reason', ''), _negated=True), _connector='OR'), name='intervention_suppressed_has_reason'),
                ),
                migrations.AddIndex(
                    model_name='delivery',
                    index=models.Index(fields=['status', 'next_attempt_at'], name='delivery_status_due_idx'),
                ),
                migrations.AddIndex(
                    model_name='delivery',
                    index=models.Index(fields=['provider', 'status'], name='delivery_provider_status_idx'),
                ),
                migrations.AddIndex(
                    model_name='delivery',
                    index=models.Index(condition=models.Q(('provider_message_id', ''), _negated=True), fields=['provider_message_id'], name='delivery_provider_msg_idx'),
                ),
                migrations.AddConstraint(
                    model_name='delivery',
                    constraint=models.UniqueConstraint(fields=('intervention', 'channel'), name='delivery_once_per_channel'),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_types_forward, content_types_backward),
    ]
