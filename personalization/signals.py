"""Signals through which apps above personalization take part in a shopper's data rights.

personalization sits below campaigns, notifications and tracking, so it cannot import their models; instead
they connect receivers here (in their AppConfig.ready):

- ``profile_erasing(sender=Profile, profile=…)``: sent inside the erase transaction; anonymise your rows
  for ``profile.user_id`` (keep what analytics needs, drop personal data).
- ``profile_exporting(sender=Profile, profile=…)``: return ``{"section_name": <JSON-able data>}`` to add to
  the shopper's export.
"""

from __future__ import annotations

from django.dispatch import Signal

profile_erasing = Signal()
profile_exporting = Signal()
