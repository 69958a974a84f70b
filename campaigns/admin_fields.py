"""The campaign form's pickers: channels in their fallback order, and exit events from the known types.

Both fields store what the JSON text boxes stored before them (a list of strings, the API's shape), and
both work without JavaScript:

- **Channels**: one row per channel, a checkbox to use it and a number for its place. The chosen
  channels, sorted by their place, are the list; two chosen channels sharing a place, or a place that is
  not a whole number, are refused with the reason. ``static/admin-ext/campaign-form.js`` hides the numbers
  and gives each row *up* / *down* buttons that reorder the rows and renumber the places, so what is
  submitted is the same form.
- **Exit events**: one checkbox per event type the engine receives (SPEC §3.1, ``campaigns.services.
  EVENT_TYPES``, the same list the service validates against: the product has no custom event types).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.datastructures import MultiValueDict
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from campaigns.services import EVENT_TYPES

# What each event means to a marketer choosing when a shopper leaves the campaign.
EVENT_LABELS: dict[str, str] = {
    "page_viewed": "viewed a page",
    "cart_viewed": "viewed the cart",
    "cart_item_added": "added an item to the cart",
    "cart_item_removed": "removed an item from the cart",
    "checkout_started": "started the checkout",
    "checkout_completed": "completed the checkout (ordered)",
    "cart_abandoned": "abandoned the cart",
}

FORM_MEDIA = forms.Media(js=["admin-ext/campaign-form.js"])


def _as_list(value: Any) -> list[str]:
    """A stored value (list), or one as the old text box or a failed POST left it (JSON text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except ValueError:
            return []
    if not isinstance(value, list | tuple):
        return []
    return [item for item in value if isinstance(item, str)]


class OrderedChannelsWidget(forms.Widget):
    """Rows of (use it?, place, channel); the submitted value is ``{"chosen": [...], "places": {...}}``."""

    media = FORM_MEDIA

    def __init__(self, choices: Sequence[tuple[str, str]], attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.choices = list(choices)

    def value_from_datadict(self, data: Mapping[str, Any], files: Any, name: str) -> dict[str, Any]:
        chosen = data.getlist(name) if isinstance(data, MultiValueDict) else _as_list(data.get(name))
        places = {value: data.get(f"{name}_place_{value}", "") for value, _ in self.choices}
        return {"chosen": chosen, "places": places}

    def value_omitted_from_data(self, data: Mapping[str, Any], files: Any, name: str) -> bool:
        return False  # like a checkbox: nothing ticked means an empty list, not "not sent"

    def _rows(self, value: Any) -> list[tuple[str, str, bool, str]]:
        """(channel, label, chosen, place) with the chosen ones first, in their order."""
        if isinstance(value, dict):  # a refused POST: show exactly what was sent
            chosen = [c for c in value.get("chosen", []) if isinstance(c, str)]
            places: dict[str, str] = value.get("places", {})

            def place_of(channel: str) -> float:
                try:
                    return float(places.get(channel, ""))
                except ValueError:
                    return float("inf")

            chosen = sorted(dict.fromkeys(chosen), key=place_of)
        else:
            chosen = list(dict.fromkeys(_as_list(value)))
            places = {}
        labels = dict(self.choices)
        ordered = [*(c for c in chosen if c in labels), *(c for c, _ in self.choices if c not in chosen)]
        return [
            (channel, labels[channel], channel in chosen, str(places.get(channel) or index + 1))
            for index, channel in enumerate(ordered)
        ]

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        base_id = (attrs or {}).get("id") or f"id_{name}"
        rows = format_html_join(
            "",
            '<li class="ie-order__row" data-channel="{0}">'
            '<input type="checkbox" name="{1}" value="{0}" id="{2}_{0}"{3}>'
            '<label for="{2}_{0}">{4}</label>'
            '<label class="ie-order__place">place <input type="number" min="1" step="1" '
            'name="{1}_place_{0}" id="{2}_place_{0}" value="{5}"></label>'
            "</li>",
            (
                (channel, name, base_id, " checked" if chosen else "", label, place)
                for channel, label, chosen, place in self._rows(value)
            ),
        )
        return format_html(
            '<ol class="ie-order" id="{}" data-field="{}">{}</ol>'
            '<p class="ie-order__hint">Tick the channels to use; the engine tries them in this order '
            "(number their places, or move them up and down).</p>",
            base_id,
            name,
            rows,
        )


class OrderedChannelsField(forms.Field):
    """The chosen channels in the order of their places: a list such as ``["onsite", "email"]``."""

    widget = OrderedChannelsWidget

    def __init__(self, *, choices: Sequence[tuple[str, str]], **kwargs: Any) -> None:
        self.choices = list(choices)
        kwargs.setdefault("widget", OrderedChannelsWidget(self.choices))
        kwargs.setdefault(
            "error_messages", {"required": "Choose at least one channel, in the order to try them."}
        )
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> list[str]:
        if not isinstance(value, dict):  # a list, in its order: checked as the form's rows are
            value = {"chosen": _as_list(value), "places": {}}
        known = dict(self.choices)
        chosen = [c for c in value.get("chosen", []) if isinstance(c, str)]
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise ValidationError(
                f"Unknown channel {', '.join(unknown)}: use {', '.join(known)}.", code="invalid_choice"
            )
        chosen = list(dict.fromkeys(chosen))
        places: dict[str, int] = {}
        for channel in chosen:
            text = str(value.get("places", {}).get(channel, "")).strip()
            if not text:  # a client that sends only the ticks sends them in its order
                places[channel] = len(places) + 1
                continue
            try:
                places[channel] = int(text)
            except ValueError:
                raise ValidationError(
                    f"The place of {known[channel]} must be a whole number, not {text!r}.", code="invalid"
                ) from None
            if places[channel] < 1:
                raise ValidationError(f"The place of {known[channel]} must be 1 or more.", code="invalid")
        by_place: dict[int, list[str]] = {}
        for channel, place in places.items():
            by_place.setdefault(place, []).append(known[channel])
        shared = [(place, names) for place, names in sorted(by_place.items()) if len(names) > 1]
        if shared:
            place, names = shared[0]
            raise ValidationError(
                f"{' and '.join(names)} share place {place}: give each chosen channel its own place.",
                code="shared_place",
            )
        return sorted(chosen, key=places.__getitem__)

    def bound_data(self, data: Any, initial: Any) -> Any:
        return data


class ExitEventsField(forms.MultipleChoiceField):
    """Event types from ``EVENT_TYPES``, in that order, as a list; anything else is refused by name."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("choices", [(e, f"{e} — {EVENT_LABELS.get(e, e)}") for e in EVENT_TYPES])
        kwargs.setdefault("widget", forms.CheckboxSelectMultiple(attrs={"class": "radiolist ie-events"}))
        kwargs.setdefault("required", False)
        kwargs.setdefault(
            "error_messages",
            {
                "invalid_choice": "%(value)s is not an event type the engine receives; choose among "
                + ", ".join(EVENT_TYPES)
                + "."
            },
        )
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        return _as_list(value) if isinstance(value, str) else value

    def clean(self, value: Any) -> list[str]:
        cleaned = super().clean(value)
        return [e for e in EVENT_TYPES if e in cleaned]
