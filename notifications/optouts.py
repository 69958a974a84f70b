"""A shopper's way out of every channel, and what it tells the rest of the system.

- **SMS**: Twilio's standard keywords in a reply (``sms_keyword_apply``, called by the signed inbound
  webhook): STOP and its synonyms withdraw SMS consent for every shopper with that number, START and its
  synonyms give it back. Twilio itself blocks further messages to a number that sent STOP (error 21610,
  a dead number to the send path); our consent makes the decision path pick the next channel instead.
- **Push**: the app reports it (``POST /users/{id}/opt-outs``); **email**: the one-click link; any
  channel: a preferences change. All go through personalization's consent services.

Every withdrawal, whatever its way, reaches :func:`consent_withdrawn_publish` (personalization's
``consent_withdrawn`` signal) in the transaction that made it, and becomes one ``engagement.unsubscribed``
event with the channel: recorded against the shopper's last message on that channel when one left (the
opt-out answers it, and the campaign's report counts it), else as a shopper-level event whose
intervention fields are null. A repeated opt-out publishes nothing: the signal fires only while consent is on.
"""

from __future__ import annotations

import uuid
from typing import Any

from interventions.lifecycle import shopper_event_enqueue
from interventions.selectors import delivery_latest_sent
from personalization.models import Profile
from personalization.services import profiles_sms_consent_set
from tracking.services import tracking_event_record

# Twilio's default opt-out and opt-in keywords (Advanced Opt-Out), matched on the whole trimmed message,
# case-insensitively, as Twilio matches them.
SMS_STOP_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
SMS_START_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})

# TrackingEvent sources by where the opt-out came from.
_SOURCES = {"sms_keyword": "webhook", "link": "link"}


def sms_keyword_apply(*, phone: str, body: str) -> str | None:
    """Apply an opt-out or opt-in keyword sent from ``phone``; returns "stop", "start", or None when the
    message is no keyword (nothing changes)."""
    keyword = body.strip().upper()
    if keyword in SMS_STOP_KEYWORDS:
        profiles_sms_consent_set(phone=phone, allowed=False, source="sms_keyword")
        return "stop"
    if keyword in SMS_START_KEYWORDS:
        profiles_sms_consent_set(phone=phone, allowed=True, source="sms_keyword")
        return "start"
    return None


def consent_withdrawn_publish(*, profile: Profile, channel: str, source: str, **kwargs: Any) -> None:
    """Receiver of ``personalization.signals.consent_withdrawn``: the ``engagement.unsubscribed`` event."""
    delivery = delivery_latest_sent(profile_id=profile.pk, channel=channel) if channel != "onsite" else None
    if delivery is None:
        shopper_event_enqueue(
            user_id=profile.user_id, type="engagement.unsubscribed", channel=channel, reason=source
        )
        return
    tracking_event_record(
        intervention_id=delivery.intervention_id,
        type="unsubscribed",
        source=_SOURCES.get(source, "api"),
        # Each withdrawal is new: the signal fires only while consent is on.
        event_id=f"optout:{uuid.uuid4()}",
        channel=channel,
        delivery_id=delivery.pk,
        properties={"via": source},
    )
