"""Signals through which apps above personalization take part in a shopper's data rights, consent and
contact points.

personalization sits below campaigns, notifications and tracking, so it cannot import their models; instead
they connect receivers here (in their AppConfig.ready):

- ``profile_erasing(sender=Profile, profile=…, user_id=…)``: sent inside the erase transaction, once the
  profile is re-keyed: ``user_id`` is the shopper's id, ``profile.user_id`` their tombstone id. Erase your
  rows that identify the shopper; rows kept for campaign results are re-keyed from ``user_id`` to the
  tombstone id (docs/privacy.md). May be sent again for an erased shopper: make it harmless.
- ``profile_exporting(sender=Profile, profile=…)``: return ``{"section_name": <JSON-able data>}`` to add to
  the shopper's export.
- ``consent_withdrawn(sender=Profile, profile=…, channel=…, source=…)``: sent inside the transaction that
  turned a channel's consent off (a preferences change, a client's opt-out, an SMS STOP), once per channel
  that was on; notifications publishes it as ``engagement.unsubscribed``.
- ``contact_changed(sender=Profile, profile=…, changes={field: [old, new]}, actor_label=…)``: sent inside
  the transaction of a contact-point change made through the API; campaigns keeps it in the audit log.
"""

from __future__ import annotations

from django.dispatch import Signal

profile_erasing = Signal()
profile_exporting = Signal()
consent_withdrawn = Signal()
contact_changed = Signal()
