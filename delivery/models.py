"""Send runs of scheduled campaigns: one row per run, one per audience member (delivery/runs.py); the
history of the variant allocations the bandit computed (delivery/allocation.py)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from campaigns.models import Campaign


class SendRun(models.Model):
    """One run of a scheduled campaign: the audience it owes a decision to, and its books."""

    class State(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        FINISHED = "finished", "Finished"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="+")
    # The schedule tick this run serves (the one-off time or the cron tick): one run per tick.
    tick = models.DateTimeField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.SCHEDULED)
    audience_size = models.PositiveIntegerField(null=True, blank=True)
    # Books, kept in the transaction of each batch: planned = decided + skipped + failed + still planned.
    decided = models.PositiveIntegerField(default=0, help_text="Members with an intervention")
    queued = models.PositiveIntegerField(default=0, help_text="Decided and handed to a channel")
    suppressed = models.JSONField(default=dict, blank=True, help_text="Decided but not sent, by reason")
    skipped = models.JSONField(default=dict, blank=True, help_text="No decision owed any more, by reason")
    failed = models.PositiveIntegerField(default=0)
    # The furthest member position walked by any of its chunks (each chunk keeps its own cursor).
    cursor = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True, help_text="When the audience was snapshotted")
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "tick"], name="send_run_once_per_tick"),
        ]
        indexes = [models.Index(fields=["state", "updated_at"], name="send_run_state_idx")]
        permissions = [("control_sendrun", "Can pause, resume and cancel send runs")]

    def __str__(self) -> str:
        return f"run {self.pk} of campaign {self.campaign_id} ({self.state})"


class SendRunMember(models.Model):
    """One shopper a run owes a decision to; ``position`` orders the walk by due time."""

    class State(models.TextChoices):
        PLANNED = "planned", "Planned"
        DECIDED = "decided", "Decided"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(SendRun, on_delete=models.CASCADE, related_name="members")
    position = models.PositiveIntegerField()
    profile_id = models.BigIntegerField()
    user_id = models.CharField(max_length=128)
    due_at = models.DateTimeField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PLANNED)
    reason = models.CharField(max_length=64, blank=True)
    intervention_id = models.UUIDField(null=True, blank=True)
    # Decisions tried and left undecided because the render ran out of time (retried later, bounded).
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="send_run_member_position"),
            models.UniqueConstraint(fields=["run", "user_id"], name="send_run_member_once"),
            models.CheckConstraint(
                condition=Q(state="planned") | ~Q(state="decided") | Q(intervention_id__isnull=False),
                name="send_run_member_decided_has_intervention",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in run {self.run_id}"


class SendRunChunk(models.Model):
    """One of a run's walkers: the members whose position is ``index`` modulo ``of``, walked in position
    order from ``cursor``. Steps of one chunk are serialised by its row lock; chunks are walked side by
    side (by several workers), so a run is not held to one core."""

    run = models.ForeignKey(SendRun, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveSmallIntegerField()
    of = models.PositiveSmallIntegerField()
    # The last member position this chunk walked (keyset pagination).
    cursor = models.PositiveIntegerField(default=0)
    done = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="send_run_chunk_once")]

    def __str__(self) -> str:
        return f"chunk {self.index}/{self.of} of run {self.run_id}"


class AllocationSnapshot(models.Model):
    """One computation of a bandit campaign's variant allocation: the shares every consumer used until
    the next one, and the posteriors they came from. The newest row is the current allocation."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    computed_at = models.DateTimeField()
    goal = models.CharField(max_length=16)
    # {variant id: share of the non-holdout traffic}, and {variant id: {"alpha", "beta", "trials",
    # "successes"}} of the Beta posterior each share was drawn from.
    shares = models.JSONField(default=dict)
    posteriors = models.JSONField(default=dict)

    class Meta:
        indexes = [models.Index(fields=["campaign", "-computed_at"], name="allocation_campaign_time_idx")]

    def __str__(self) -> str:
        return f"allocation of campaign {self.campaign_id} at {self.computed_at:%Y-%m-%d %H:%M}"
