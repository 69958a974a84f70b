from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personalization.models import Profile
from personalization.rules import RuleError, compile_rule, profile_rule_context, validate_rule

# --- Parsing and errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'cart.total >= 50 and attributes.tier == "gold" and orders_count == 0',
        "score >= 0.7",
        'locale in ["fr-FR", "fr"]',
        "not (cart.item_count < 2)",
        "attributes.vip == true",
        'email != ""',
        "0.5 < score <= 0.9",
        "attributes.tier == null or attributes.tier != None",
        'event.cart.currency == "EUR"',
        'cart.total >= 50 and\n  (attributes.tier == "gold" or orders_count > 3)',
        "",
    ],
)
def test_it_compiles_the_documented_examples(text) -> None:
    compile_rule(text)


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ('open("/etc/passwd") == 1', "line 1, col 1", "function calls are not allowed"),
        ("cart.total + 1 > 2", "line 1, col 1", "arithmetic is not allowed"),
        ("attributes.__class__ == 1", "line 1, col 1", "names may not start with '_'"),
        ("''.__class__.__mro__ == 1", "line 1, col 1", "only dotted names"),
        ("cart.total >= 50 and\n  attributes.x[0] == 1", "line 2, col 3", "subscripts"),
        ('cart.total > "fifty"', "line 1, col 14", "`>` needs a number"),
        ("tier == 1", "line 1, col 1", "unknown name 'tier'"),
        ("score", "line 1, col 1", "expected a comparison"),
        ("1 == 1", "line 1, col 1", "not two literals"),
        ("cart.total == cart.item_count", "line 1, col 1", "not two names"),
        ("locale in 'fr'", "line 1, col 11", "needs a list literal"),
        ("x = 1", "line 1, col 3", "syntax error"),
        ("cart == 1", "line 1, col 1", "name a field of cart"),
        ("(lambda: 1) == 1", "line 1, col 2", "lambda is not allowed"),
        ("score >= 1e999", "line 1, col 10", "numbers must be finite"),
        ("[x for x in cart] == 1", "line 1, col 1", "comprehensions"),
    ],
)
def test_it_refuses_anything_outside_the_grammar_naming_where_and_what(text, where, what) -> None:
    with pytest.raises(RuleError) as raised:
        compile_rule(text)

    assert raised.value.code == "invalid_rule"
    assert raised.value.message.startswith(where), raised.value.message
    assert what in raised.value.message


def test_it_refuses_rules_nested_absurdly_deep() -> None:
    with pytest.raises(RuleError, match="at most 32 deep"):
        compile_rule("not " * 40 + "score > 1")
    with pytest.raises(RuleError):
        compile_rule("(" * 500 + "score > 1" + ")" * 500)
    with pytest.raises(RuleError, match="limited to"):
        compile_rule("score > 1 or " * 400 + "score > 1")


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("cart.total > " + "9" * 3980, "numbers are limited to 32 characters"),
        ("orders_count == 10000000000000000", "numbers must be between -1,000,000,000,000,000 and"),
        ("cart.total >= -1e16", "numbers must be between"),
        ("score > 0." + "0" * 200 + "1", "numbers are limited to 32 characters"),
        ("attributes.tier in [1, 2, 1e300]", "numbers must be between"),
        ('attributes.note == "' + "x" * 1001 + '"', "strings are limited to 1000 characters"),
        ('email == "a\\x00b"', "strings may not contain NUL"),
        ('attributes.tier in ["gold", "\\ud800"]', "unpaired surrogate"),
        ("attributes." + ".".join(["a"] * 10) + " == 1", "names are limited to 10 parts"),
    ],
)
def test_it_refuses_literals_and_names_out_of_range_naming_where_and_why(text, what) -> None:
    with pytest.raises(RuleError) as raised:
        validate_rule(text, for_segment=True)

    assert raised.value.message.startswith("line 1, col "), raised.value.message
    assert what in raised.value.message


def test_it_accepts_literals_at_the_edges_of_the_range() -> None:
    rule = compile_rule(
        "total_revenue <= 1000000000000000 and total_revenue >= -1e15 and score > 0.000001"
        ' and attributes.note != "' + "é" * 1000 + '"'
    )

    assert rule.evaluate({"total_revenue": 5, "score": 0.5, "attributes": {"note": "x"}})


def test_it_refuses_event_names_in_a_segment_but_accepts_them_in_conditions() -> None:
    validate_rule("score >= 0.7", for_segment=False)

    with pytest.raises(RuleError, match="only known while an event is decided"):
        validate_rule("score >= 0.7 and cart.total > 1", for_segment=True)
    with pytest.raises(RuleError, match=r"event\.event_type"):
        validate_rule('event.event_type == "x"', for_segment=True)
    with pytest.raises(RuleError):
        compile_rule("score >= 0.7").to_q()


def test_it_caches_compiled_rules_by_text() -> None:
    assert compile_rule("score >= 0.5") is compile_rule("score >= 0.5")


# --- In memory ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('cart.total >= 50 and attributes.tier == "gold" and orders_count == 0', True),
        ("cart.total >= 200", False),
        ("attributes.missing == 1", False),
        ("attributes.missing != 1", False),  # comparisons with a missing value are false
        ("attributes.missing == null", True),
        ("not (attributes.missing < 2)", True),
        ("attributes.missing not in [1, 2]", False),
        ('attributes.n == "60"', False),  # 60 is not "60": nothing is coerced
        ("attributes.n == 60.0", True),
        ("attributes.s == 60", False),
        ("attributes.s >= 1", False),  # ordering needs a number
        ("attributes.vip == 1", False),  # true is not 1
        ("attributes.vip == true", True),
        ('locale in ["fr-FR", "fr"]', True),
        ("score >= 0.7", True),
        ("event.explanations.idle_seconds > 100", True),
        ('event_type == "prediction"', False),
        ("total_revenue > 10.5", True),
        ("consent_sms == false", True),
        ("cart.items == null", False),
        ("cart.item_count != 3", True),
    ],
)
def test_it_evaluates_in_memory_with_typed_values_and_none_semantics(text, expected) -> None:
    # given a profile and a prediction event
    profile = Profile(
        user_id="u-1",
        locale="fr-FR",
        orders_count=0,
        total_revenue=Decimal("10.60"),
        attributes={"tier": "gold", "n": 60, "s": "60", "vip": True},
        last_cart={"total": 10},
    )
    event = {
        "score": 0.83,
        "model": "cart_abandonment",
        "explanations": {"idle_seconds": 240},
        "cart": {"total": 129.9, "item_count": 2, "items": []},
    }

    # when the rule is evaluated against profile + event
    context = profile_rule_context(profile, event=event)

    # then the event's cart is the one seen, and the answer follows docs/rules.md
    assert context["cart"]["total"] == 129.9
    assert compile_rule(text).evaluate(context) is expected


def test_it_never_reaches_python_attributes() -> None:
    # given a context holding an object with an attribute the rule names
    class Sneaky:
        total = 1000

    # when a rule names that attribute, it resolves through dict lookups only
    assert compile_rule("cart.total > 1").evaluate({"cart": Sneaky()}) is False


# --- In SQL, the same members as in memory -----------------------------------------------------------


@pytest.mark.django_db
def test_it_queries_json_values_with_the_same_types_as_in_memory() -> None:
    # given profiles whose JSON values differ only by type or presence
    Profile.objects.bulk_create(
        [
            Profile(user_id="number", attributes={"n": 60, "tier": "gold"}, last_cart={"total": 70}),
            Profile(user_id="text", attributes={"n": "60", "tier": "silver"}, last_cart={"total": "70"}),
            Profile(user_id="null", attributes={"n": None}, last_cart={}),
            Profile(user_id="bool", attributes={"n": True}, last_cart={"total": 1}),
        ]
    )
    cases = {
        "attributes.n == 60": {"number"},
        'attributes.n == "60"': {"text"},
        "attributes.n == true": {"bool"},
        "attributes.n == 1": set(),
        "attributes.n == null": {"null"},
        "attributes.n != 60": {"text", "bool"},
        "cart.total >= 50": {"number"},
        "not (cart.total >= 50)": {"text", "null", "bool"},
        'attributes.tier not in ["gold"]': {"text"},
        "attributes.missing != 1": set(),
    }
    for text, expected in cases.items():
        rule = compile_rule(text)
        # when the rule runs as a query and in memory
        in_sql = set(Profile.objects.filter(rule.to_q()).values_list("user_id", flat=True))
        in_memory = {p.user_id for p in Profile.objects.all() if rule.evaluate(profile_rule_context(p))}
        # then both give the expected members
        assert in_sql == expected, text
        assert in_memory == expected, text


_PATHS = (
    "attributes.tier",
    "attributes.n",
    "attributes.vip",
    "attributes.nested.x",
    "attributes.missing",
    "cart.total",
    "cart.item_count",
    "cart.currency",
    "orders_count",
    "total_revenue",
    "locale",
    "email",
    "consent_email",
)
_SCALARS = st.sampled_from(
    [0, 1, 2, 50, 60, -1, 0.5, 49.99, 60.0, 1000, "gold", "60", "", "EUR", "fr", True, False]
)
_NUMBERS = st.sampled_from([0, 1, 2, 50, 60, -1, 0.5, 49.99, 60.0, 1000])
_JSON_VALUES = st.one_of(_SCALARS, st.none(), st.just([1, 2]), st.just({"x": 1}))


def _literal(value) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    return json.dumps(value)


@st.composite
def _comparison(draw) -> str:
    path = draw(st.sampled_from(_PATHS))
    op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in", "== null", "!= null"]))
    if op in ("== null", "!= null"):
        return f"{path} {op}"
    if op in ("in", "not in"):
        items = draw(st.lists(_SCALARS, min_size=1, max_size=3))
        return f"{path} {op} [{', '.join(_literal(item) for item in items)}]"
    literal = draw(_NUMBERS if op in ("<", "<=", ">", ">=") else _SCALARS)
    if draw(st.booleans()) and op in ("==", "!=", "<", ">"):
        flipped = {"==": "==", "!=": "!=", "<": ">", ">": "<"}[op]
        return f"{_literal(literal)} {flipped} {path}"
    return f"{path} {op} {_literal(literal)}"


_RULES = st.recursive(
    _comparison(),
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
        st.builds(lambda a: f"not ({a})", inner),
    ),
    max_leaves=5,
)

_ATTRIBUTES = st.dictionaries(
    st.sampled_from(["tier", "n", "vip", "nested"]),
    st.one_of(_JSON_VALUES, st.fixed_dictionaries({"x": _JSON_VALUES})),
    max_size=4,
)
_CARTS = st.dictionaries(st.sampled_from(["total", "item_count", "currency"]), _JSON_VALUES, max_size=3)
_PROFILES = st.lists(
    st.fixed_dictionaries(
        {
            "attributes": _ATTRIBUTES,
            "last_cart": _CARTS,
            "orders_count": st.integers(0, 3),
            "total_revenue": st.sampled_from(
                [Decimal("0"), Decimal("49.99"), Decimal("60.00"), Decimal("0.50")]
            ),
            "locale": st.sampled_from(["", "fr", "fr-FR", "en"]),
            "email": st.sampled_from(["", "a@example.com"]),
            "consent_email": st.booleans(),
        }
    ),
    min_size=1,
    max_size=6,
)


class _Rollback(Exception):
    pass


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(profiles=_PROFILES, text=_RULES)
def test_it_selects_the_same_members_in_sql_as_in_memory(profiles, text) -> None:
    rule = compile_rule(text)
    try:
        with transaction.atomic():
            # given generated profiles stored in PostgreSQL and read back
            Profile.objects.bulk_create(
                [Profile(user_id=f"u-{i}", **data) for i, data in enumerate(profiles)]
            )
            stored = list(Profile.objects.all())

            # when the rule runs in memory and as a query
            in_memory = {p.pk for p in stored if rule.evaluate(profile_rule_context(p))}
            in_sql = set(Profile.objects.filter(rule.to_q()).values_list("pk", flat=True))

            # then the members are the same
            assert in_memory == in_sql, (text, profiles)
            raise _Rollback
    except _Rollback:
        pass
