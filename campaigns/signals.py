"""Signals campaigns sends so that apps above it can react without being imported here.

``campaign_changed(sender=Campaign, campaign_id=…)`` is sent after commit whenever a campaign, one of its
variants, or a template or segment it uses changes (create, update, transition). The Kafka decision path
keeps active campaigns in memory and listens to this to refresh them; other processes notice through the
Redis counter ``ie:campaigns:version`` (see campaigns.services.campaigns_version).
"""

from __future__ import annotations

from django.dispatch import Signal

campaign_changed = Signal()
