from __future__ import annotations

from django.db import models


class OutboxMessage(models.Model):
    """A Kafka message written in the same transaction as the change it describes.

    The relay publishes unpublished rows in id order and stamps ``published_at``; a rolled-back
    transaction leaves no row, so nothing is ever published for a change that did not happen.
    """

    topic = models.CharField(max_length=200)
    key = models.CharField(max_length=200, blank=True)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["id"], name="outbox_unpublished_idx", condition=models.Q(published_at__isnull=True)
            ),
        ]
        # The dead-letter topic has no table of its own; it is the same Kafka plumbing, so its permission
        # lives here (viewing the outbox already opens the dead-letter page). Replaying publishes into the
        # production input topics: an operator's decision.
        permissions = [("replay_dead_letters", "Can replay dead letters to their source topics")]

    def __str__(self) -> str:
        return f"{self.topic} #{self.pk}"
