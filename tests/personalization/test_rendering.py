from __future__ import annotations

import json
import re
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings

from personalization.models import Profile
from personalization.rendering import (
    MAX_OUTPUT_CHARS,
    MAX_TEMPLATE_CHARS,
    TemplateRenderError,
    render_fields,
    sample_context,
    validate_fields,
)

PAYLOADS = json.loads((Path(__file__).parent / "injection_payloads.json").read_text())
# What must never appear in an output or an error message: a secret, a Python repr, a file path.
LEAKS = re.compile(
    r"<class|<function|<built-in|<bound|object at 0x|<TemplateReference|<Context|site-packages|/work/|\.py\b"
)


def _assert_harmless(text: str) -> None:
    assert settings.SECRET_KEY not in text
    assert not LEAKS.search(text), text


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("field", ["body_text", "body_html"])
def test_it_neither_executes_nor_leaks_a_template_injection(payload, field) -> None:
    # given a context holding a secret-looking value (never exposed through any name)
    context = {**sample_context(), "settings": settings, "config": {"SECRET_KEY": settings.SECRET_KEY}}

    # when the payload is validated then rendered
    with pytest.raises(TemplateRenderError) as refused:
        validate_fields({field: payload})
    _assert_harmless(refused.value.message)
    outcome: TemplateRenderError | str
    try:
        outcome = render_fields({field: payload}, context)[field]
    except TemplateRenderError as error:
        outcome = error

    if isinstance(outcome, TemplateRenderError):
        # then it is refused with a message naming the field, without leaking anything
        assert outcome.field == field
        assert outcome.message.startswith(field)
        _assert_harmless(outcome.message)
    else:
        # or it rendered something small and harmless
        assert len(outcome) < 1000
        _assert_harmless(outcome)


def test_it_renders_personalised_content_with_money_in_the_shoppers_locale() -> None:
    # given sample data for a French shopper
    context = sample_context(locale="fr-FR")

    # when a template uses the name, the cart total and the items
    rendered = render_fields(
        {
            "subject": "{{ profile.first_name }}, votre panier de {{ cart.total|money(cart.currency) }}",
            "body_text": "{% for item in cart.items %}{{ item.name|upper }} x{{ item.quantity }};"
            "{% endfor %}",
            "cta_label": "",
        },
        context,
    )

    # then the values are filled in, French-style, and empty fields stay empty
    assert rendered == {
        "subject": "Camille, votre panier de 129,90\u00a0€",
        "body_text": "CHAUSSURE DE TRAIL x1;CHAUSSETTES x2;",
        "cta_label": "",
    }
    english = render_fields({"s": "{{ cart.total|money('USD') }}"}, sample_context(locale="en"))
    assert english == {"s": "$129.90"}


def test_it_escapes_shopper_data_in_html_bodies_only() -> None:
    # given a shopper whose first name is an HTML payload
    context = {**sample_context(), "profile": {"first_name": "<script>alert(1)</script>"}}

    # when the same template renders as text and as HTML
    rendered = render_fields(
        {"body_text": "Hi {{ first_name }}", "body_html": "<p>Hi {{ first_name }}</p>"}, context
    )

    # then only the HTML body is escaped
    assert rendered["body_text"] == "Hi <script>alert(1)</script>"
    assert rendered["body_html"] == "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;</p>"


def test_it_renders_missing_data_as_empty_and_honours_default() -> None:
    rendered = render_fields(
        {
            "s": "[{{ profile.attributes.tier }}|{{ profile.attributes.tier|default('member') }}|"
            "{{ event.a.b.c }}]"
        },
        {"profile": {"attributes": {}}},
    )

    assert rendered == {"s": "[|member|]"}


@pytest.mark.parametrize(
    ("source", "line", "message"),
    [
        ("Hello\n\n{{ cart.total }", 3, "unexpected '}'"),
        ("Hello\n{{ name|nosuch }}", 2, "No filter named 'nosuch'"),
        ("Hello\n{{ cartt.total }}", 2, "unknown variable 'cartt'"),
        ("ok\n{% if cart.total %}\n{{ cart.total / 0 }}\n{% endif %}", 3, "division by zero"),
    ],
)
def test_it_names_the_field_and_line_of_an_error(source, line, message) -> None:
    with pytest.raises(TemplateRenderError) as raised:
        validate_fields({"body_html": source})

    assert raised.value.code == "template_error"
    assert raised.value.field == "body_html"
    assert raised.value.line == line
    assert raised.value.message.startswith(f"body_html, line {line}: ")
    assert message in raised.value.message


def test_it_limits_template_and_output_sizes() -> None:
    with pytest.raises(TemplateRenderError, match="longer than"):
        render_fields({"body_text": "x" * (MAX_TEMPLATE_CHARS + 1)}, sample_context())

    # a loop over large data may not produce an unbounded output
    big = {**sample_context(), "cart": {"items": ["x" * 1000] * 200}}
    with pytest.raises(TemplateRenderError, match="output is longer"):
        render_fields(
            {
                "body_text": "{% for a in cart.items %}{% for b in cart.items %}{{ a }}"
                "{% endfor %}{% endfor %}"
            },
            big,
        )
    assert MAX_OUTPUT_CHARS < 200 * 200 * 1000


@pytest.mark.django_db
def test_it_never_hands_a_model_instance_to_a_template() -> None:
    # given a caller that mistakenly passes a Profile model instance
    profile = Profile.objects.create(user_id="u-1", first_name="Ada")

    # when a template reads it, then it sees nothing of the object
    rendered = render_fields(
        {"s": "[{{ profile }}|{{ profile.first_name }}|{{ cart.total }}]"},
        {"profile": profile, "cart": {"total": Decimal("1.50")}},
    )
    assert rendered == {"s": "[{}||1.50]"}


def test_it_offers_realistic_sample_data_for_previews() -> None:
    context = sample_context(locale="fr")

    assert context["profile"]["first_name"]
    assert context["cart"]["item_count"] == len(context["cart"]["items"])
    assert set(context) >= {"profile", "cart", "event", "campaign", "variant", "discount_code", "links"}
    validate_fields({"subject": "{{ links.unsubscribe_url }} {{ campaign.name }} {{ variant.name }}"})


# --- The rendering budget: loop iterations and time ------------------------------------------------------

NESTED_LOOPS = "{% for a in [0] * 10000 %}{% for b in [0] * 10000 %}{% endfor %}{% endfor %}"


@pytest.mark.parametrize(
    "source",
    [
        NESTED_LOOPS,
        # a literal list is folded into a constant when the template compiles: still counted
        "{% for a in [" + ",".join(["0"] * 3000) + "] %}{% for b in [" + ",".join(["0"] * 3000) + "] %}"
        "{% endfor %}{% endfor %}",
        # a loop over a string iterates its characters
        "{% for a in 'ab' * 5000 %}{% for b in 'ab' * 5000 %}{% endfor %}{% endfor %}",
    ],
)
def test_it_refuses_to_save_a_template_whose_loops_exceed_the_iteration_budget(source) -> None:
    # when a template that would loop tens of millions of times without output is validated
    with pytest.raises(TemplateRenderError) as refused:
        validate_fields({"body_text": source})

    # then it is refused at once, naming the limit
    assert "TEMPLATE_MAX_LOOP_ITERATIONS" in refused.value.message
    assert refused.value.message.startswith("body_text, line 1: loops would run more than 10,000 iterations")


def test_it_counts_iterations_over_the_shoppers_data_at_render_time() -> None:
    # given a template that passes validation (the sample cart has two items)
    source = "{% for a in cart.items %}{% for b in cart.items %}.{% endfor %}{% endfor %}"
    validate_fields({"body_text": source})
    assert render_fields({"body_text": source}, sample_context()) == {"body_text": "...."}

    # when a shopper's cart holds 200 items (40,200 iterations)
    big = {**sample_context(), "cart": {"items": list(range(200))}}

    # then that render fails, naming the limit
    with pytest.raises(TemplateRenderError, match="TEMPLATE_MAX_LOOP_ITERATIONS"):
        render_fields({"body_text": source}, big)


def test_it_stops_a_render_that_runs_out_of_time(settings) -> None:
    # given a render deadline of 50 ms, and a template well inside the iteration budget whose every
    # iteration joins a 10,000-item list (seconds in all)
    settings.TEMPLATE_RENDER_TIMEOUT_MS = 50
    source = (
        "{% for a in [0] * 90 %}{% for b in [0] * 90 %}"
        "{% if ([7] * 10000)|join|length > 1 %}{% endif %}{% endfor %}{% endfor %}"
    )

    # when it is validated, and rendered
    started = time.monotonic()
    with pytest.raises(TemplateRenderError) as refused:
        validate_fields({"body_text": source})
    with pytest.raises(TemplateRenderError, match="TEMPLATE_RENDER_TIMEOUT_MS"):
        render_fields({"body_text": source}, sample_context())

    # then both stop soon after the deadline, naming the limit
    assert time.monotonic() - started < 1.0
    assert "took longer than 50 ms" in refused.value.message
    assert "TEMPLATE_RENDER_TIMEOUT_MS" in refused.value.message


def test_it_bounds_list_and_text_concatenation() -> None:
    with pytest.raises(TemplateRenderError, match="result is too large"):
        validate_fields({"body_text": "{{ ([0] * 10000 + [0] * 10000)|length }}"})
    with pytest.raises(TemplateRenderError, match="result is too large"):
        validate_fields({"body_text": "{{ ('ab' * 5000 + 'ab' * 5000)|length }}"})


def test_it_renders_ordinary_loops_and_filters_within_the_budget() -> None:
    # given templates that loop (with an else), and use filters with and without the context
    fields = {
        "body_text": "{% for item in cart.items %}{{ item.name|upper }} "
        "{{ item.price|money(cart.currency) }}; {% endfor %}"
        "{% for x in [] %}never{% else %}(none){% endfor %}",
        "body_html": "<p>{{ ['<b>', 'x']|join(', ') }}</p>",
    }

    # when they are rendered
    rendered = render_fields(fields, sample_context())

    # then the budget changes nothing
    assert rendered["body_text"] == "TRAIL SHOE €99.90; RUNNING SOCKS €15.00; (none)"
    assert rendered["body_html"] == "<p>&lt;b&gt;, x</p>"


def test_it_does_not_run_again_a_template_that_ran_out_of_time_lately(settings) -> None:
    # given a template that ran out of its 50 ms once
    settings.TEMPLATE_RENDER_TIMEOUT_MS = 50
    slow = (
        "{% for a in [0] * 90 %}{% for b in [0] * 90 %}"
        "{% if ([8] * 10000)|join|length > 1 %}{% endif %}{% endfor %}{% endfor %}"
    )
    with pytest.raises(TemplateRenderError, match="took longer than 50 ms"):
        render_fields({"body_text": slow}, sample_context())

    # when it is rendered again, next to an ordinary template
    started = time.monotonic()
    with pytest.raises(TemplateRenderError) as refused:
        render_fields({"body_text": slow}, sample_context())
    elapsed = time.monotonic() - started
    ordinary = render_fields({"body_text": "Hi {{ first_name }}"}, sample_context())

    # then it fails at once, saying why, and the other template renders
    assert elapsed < 0.02, elapsed
    assert "took longer than 50 ms recently" in refused.value.message
    assert ordinary == {"body_text": "Hi Ada"}


def test_it_counts_the_render_deadline_in_the_rendering_threads_cpu_time(settings) -> None:
    # given a template that needs about 20 ms of CPU, a 60 ms deadline, and another thread that holds the
    # interpreter (sum over a range never lets go of the GIL) for a few hundred ms while it renders
    source = (
        "{% for a in [0] * 40 %}{% for b in [0] * 40 %}"
        "{% if ([7] * 100)|join|length > 1 %}{% endif %}{% endfor %}{% endfor %}"
    )
    render_fields({"body_text": source}, sample_context())  # compiled outside the measure
    settings.TEMPLATE_RENDER_TIMEOUT_MS = 60
    hog = threading.Thread(target=lambda: [sum(range(3_000_000)) for _ in range(4)])

    # when it renders while its thread waits for the other one
    started = time.monotonic()
    hog.start()
    try:
        rendered = render_fields({"body_text": source}, sample_context())
        elapsed = time.monotonic() - started
    finally:
        hog.join()

    # then it took longer than the deadline on the wall clock, and renders: waiting is not rendering
    assert elapsed > 0.06, elapsed
    assert rendered == {"body_text": ""}


def test_it_refuses_a_template_slow_in_cpu_and_says_it_was_the_time(settings) -> None:
    # given a 5 ms deadline and a template that needs about 20 ms of CPU
    settings.TEMPLATE_RENDER_TIMEOUT_MS = 5
    source = (
        "{% for a in [0] * 40 %}{% for b in [0] * 40 %}"
        "{% if ([6] * 100)|join|length > 1 %}{% endif %}{% endfor %}{% endfor %}"
    )

    # when it is rendered
    started = time.thread_time()
    with pytest.raises(TemplateRenderError) as refused:
        render_fields({"body_text": source}, sample_context())

    # then it is refused on the deadline, after about that much CPU, and the error says it was the time
    assert "took longer than 5 ms" in refused.value.message
    assert refused.value.out_of_time
    assert time.thread_time() - started < 0.5
    # (an error about what the template is, not how long it took, does not say so)
    with pytest.raises(TemplateRenderError) as bad:
        render_fields({"body_text": "{{ cart.total / 0 }}"}, {**sample_context(), "cart": {"total": 1}})
    assert not bad.value.out_of_time
