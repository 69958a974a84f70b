"""Signals through which apps above personalization take part in a shopper's data rights.

personalization sits below campaigns, notifications and tracking, so it cannot import their models; instead
they connect receivers here (in their AppConfig.ready):

- ``profile_erasing(sender=Profile, profile=…, user_id=…)``: sent inside the erase transaction, once the
  profile is re-keyed: ``user_id`` is the shopper's id, ``profile.user_id`` their tombstone id. Erase your
  rows that identify the shopper; rows kept for campaign results are re-keyed from ``user_id`` to the
  tombstone id (docs/privacy.md). May be sent again for an erased shopper: make it harmless.
- ``profile_exporting(sender=Profile, profile=…)``: return ``{"section_name": <JSON-able data>}`` to add to
  the shopper's export.
"""

from __future__ import annotations

from django.dispatch import Signal

profile_erasing = Signal()
profile_exporting = Signal()
