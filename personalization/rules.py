"""The rule language shared by campaign conditions and segments (see docs/rules.md).

A rule is a Python-looking boolean expression such as
``cart.total >= 50 and attributes.tier == "gold" and orders_count == 0``. It is parsed with ``ast`` and
only a small grammar is accepted: ``and``/``or``/``not``, comparisons between a dotted name and a literal,
string/number/boolean/null literals and list literals on the right of ``in``. Nothing is ever passed to
``eval`` and names resolve through dictionary lookups only, so a rule cannot reach a Python object.

Two ways to run one rule, with the same answer:

* ``Rule.evaluate(context)`` in memory, for a live event (``profile_rule_context`` builds the context);
* ``Rule.to_q()`` as a ``Q`` over ``personalization.Profile``, for segments and scheduled sends.

Semantics, chosen so that SQL and Python agree exactly:

* a missing path (or a JSON ``null``) is ``None``; every comparison with ``None`` is false, including
  ``!=`` and ``not in`` — except the explicit ``== null`` / ``!= null`` checks;
* values are typed: ``"60"`` is not ``60`` and ``true`` is not ``1``; nothing is coerced;
* ``<``, ``<=``, ``>``, ``>=`` take a number literal and are false for a value that is not a number;
* ``not`` negates the two-valued result, so ``not (cart.item_count < 2)`` is true for an empty profile.
"""

from __future__ import annotations

import ast
import functools
import io
import math
import tokenize
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db.models import CharField, F, Func, JSONField, Q, Value
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Coalesce
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    LessThan,
    LessThanOrEqual,
)

from core.errors import UnprocessableError

if TYPE_CHECKING:
    from personalization.models import Profile

MAX_RULE_LENGTH = 4000
MAX_LIST_LENGTH = 200
MAX_NESTING = 32
# Literals are bounded so that every rule that compiles also runs, in memory and as SQL. 10**15 is below
# 2**53, so a number literal means the same as a Python float, a JSON number and a PostgreSQL numeric,
# and its text (at most 32 characters) is never a 4,000-digit number or fraction. PostgreSQL text and
# jsonb cannot hold NUL, and the database driver cannot encode an unpaired surrogate ("\ud800").
MAX_NUMBER = 10**15
MAX_NUMBER_CHARS = 32
MAX_STRING_LENGTH = 1000
MAX_NAME_PARTS = 10

# Profile columns a rule may name, by the kind of value they hold.
PROFILE_FIELDS: dict[str, str] = {
    "user_id": "string",
    "email": "string",
    "phone": "string",
    "first_name": "string",
    "locale": "string",
    "timezone": "string",
    "orders_count": "number",
    "total_revenue": "number",
    "consent_onsite": "boolean",
    "consent_email": "boolean",
    "consent_sms": "boolean",
    "consent_push": "boolean",
}
# JSON documents on the profile: ``attributes.<key>`` and ``cart.<key>`` (the last cart seen).
JSON_ROOTS: dict[str, str] = {"attributes": "attributes", "cart": "last_cart"}
# Known only while a live event is being decided; a segment cannot use them.
EVENT_NAMES = frozenset({"score", "model", "model_version", "event_type"})
EVENT_ROOT = "event"

_LITERAL_NAMES: dict[str, Any] = {"true": True, "false": False, "null": None}
_ORDERING = {"lt", "le", "gt", "ge"}
_OPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "eq",
    ast.NotEq: "ne",
    ast.Lt: "lt",
    ast.LtE: "le",
    ast.Gt: "gt",
    ast.GtE: "ge",
    ast.In: "in",
    ast.NotIn: "not_in",
}
_FLIPPED = {"eq": "eq", "ne": "ne", "lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}
_SYMBOLS = {
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "in": "in",
    "not_in": "not in",
}
_DESCRIPTIONS: dict[type[ast.AST], str] = {
    ast.Call: "function calls are not allowed",
    ast.Subscript: "subscripts ([...]) are not allowed; use dotted names",
    ast.BinOp: "arithmetic is not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.IfExp: "if/else expressions are not allowed",
    ast.Dict: "dict literals are not allowed",
    ast.Set: "set literals are not allowed",
    ast.Tuple: "tuples are not allowed; use a list [...]",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.NamedExpr: "assignments (:=) are not allowed",
    ast.Starred: "* unpacking is not allowed",
    ast.Await: "await is not allowed",
}


class RuleError(UnprocessableError):
    code = "invalid_rule"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


def _number(value: Any) -> Decimal:
    # Through str() so a float read back from JSON (0.7) compares like the decimal PostgreSQL stored.
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _same(value: Any, literal: Any) -> bool:
    kind = _kind(value)
    if kind != _kind(literal) or kind in ("null", "other"):
        return False
    if kind == "number":
        return _number(value) == _number(literal)
    return bool(value == literal)


_ALWAYS = Q(pk__isnull=False)
_NEVER = Q(pk__isnull=True)


@dataclass(frozen=True)
class _Node:
    def evaluate(self, context: Mapping[str, Any]) -> bool:
        raise NotImplementedError

    def to_q(self) -> Q:
        raise NotImplementedError

    def names(self) -> list[tuple[tuple[str, ...], str]]:
        return []


@dataclass(frozen=True)
class _Constant(_Node):
    value: bool

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        return self.value

    def to_q(self) -> Q:
        return _ALWAYS if self.value else _NEVER


@dataclass(frozen=True)
class _BoolOp(_Node):
    op: str  # "and" | "or"
    items: tuple[_Node, ...]

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        if self.op == "and":
            return all(item.evaluate(context) for item in self.items)
        return any(item.evaluate(context) for item in self.items)

    def to_q(self) -> Q:
        result = self.items[0].to_q()
        for item in self.items[1:]:
            result = result & item.to_q() if self.op == "and" else result | item.to_q()
        return result

    def names(self) -> list[tuple[tuple[str, ...], str]]:
        return [name for item in self.items for name in item.names()]


@dataclass(frozen=True)
class _Not(_Node):
    item: _Node

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        return not self.item.evaluate(context)

    def to_q(self) -> Q:
        # Every comparison below is two-valued in SQL (never NULL), so NOT means exactly "not".
        return ~self.item.to_q()

    def names(self) -> list[tuple[tuple[str, ...], str]]:
        return self.item.names()


@dataclass(frozen=True)
class _Compare(_Node):
    path: tuple[str, ...]
    op: str
    literal: Any  # str | int | float | bool | None, or a tuple of those for in / not in
    where: str  # "line 1, col 5" for error messages

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        value = _resolve(context, self.path)
        if self.op == "eq":
            return value is None if self.literal is None else _same(value, self.literal)
        if self.op == "ne":
            if self.literal is None:
                return value is not None
            return value is not None and not _same(value, self.literal)
        if self.op == "in":
            return any(_same(value, item) for item in self.literal)
        if self.op == "not_in":
            return value is not None and not any(_same(value, item) for item in self.literal)
        if _kind(value) != "number":
            return False
        left, right = _number(value), _number(self.literal)
        if self.op == "lt":
            return left < right
        if self.op == "le":
            return left <= right
        if self.op == "gt":
            return left > right
        return left >= right

    def names(self) -> list[tuple[tuple[str, ...], str]]:
        return [(self.path, self.where)]

    def to_q(self) -> Q:
        root = self.path[0]
        if root in JSON_ROOTS:
            return self._json_q(JSON_ROOTS[root], self.path[1:])
        if root in PROFILE_FIELDS and len(self.path) == 1:
            return self._column_q(root, PROFILE_FIELDS[root])
        raise RuleError(_not_queryable_message(self.path, self.where))

    def _column_q(self, column: str, kind: str) -> Q:
        # Profile columns are NOT NULL, so a value is always present; only its type can differ.
        def same(literal: Any) -> Q:
            if _kind(literal) != kind:
                return _NEVER
            value = _number(literal) if kind == "number" else literal
            return Q(Exact(F(column), Value(value)))

        if self.op == "eq":
            return _NEVER if self.literal is None else same(self.literal)
        if self.op == "ne":
            return _ALWAYS if self.literal is None else ~same(self.literal)
        if self.op in ("in", "not_in"):
            matches = _NEVER
            for item in self.literal:
                matches |= same(item)
            return matches if self.op == "in" else ~matches
        if kind != "number":
            return _NEVER
        return Q(_ORDER_LOOKUPS[self.op](F(column), Value(_number(self.literal))))

    def _json_q(self, column: str, keys: tuple[str, ...]) -> Q:
        value: Any = column
        for key in keys:
            value = KeyTransform(key, value)
        # jsonb_typeof is NULL for a missing key; coalesced so that every condition here is TRUE or FALSE.
        kind = Coalesce(
            Func(value, function="jsonb_typeof", output_field=CharField()),
            Value("missing"),
            output_field=CharField(),
        )
        absent = Q(Exact(kind, Value("missing"))) | Q(Exact(kind, Value("null")))

        def same(literal: Any) -> Q:
            json_kind = _kind(literal)
            # Guarded by the type first: comparing jsonb values of different types follows jsonb's own
            # cross-type order, and "60" must never equal 60.
            return Q(Exact(kind, Value(json_kind))) & Q(
                Exact(value, Value(literal, output_field=JSONField()))
            )

        if self.op == "eq":
            return absent if self.literal is None else same(self.literal)
        if self.op == "ne":
            return ~absent if self.literal is None else ~absent & ~same(self.literal)
        if self.op in ("in", "not_in"):
            matches = _NEVER
            for item in self.literal:
                matches |= same(item)
            return matches if self.op == "in" else ~absent & ~matches
        return Q(Exact(kind, Value("number"))) & Q(
            _ORDER_LOOKUPS[self.op](value, Value(self.literal, output_field=JSONField()))
        )


_ORDER_LOOKUPS: dict[str, Any] = {
    "lt": LessThan,
    "le": LessThanOrEqual,
    "gt": GreaterThan,
    "ge": GreaterThanOrEqual,
}


def _resolve(context: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = context
    for part in path:
        # Dictionary lookups only: a rule can never reach an attribute of a Python object.
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _not_queryable_message(path: tuple[str, ...], where: str) -> str:
    name = ".".join(path)
    if path[0] in EVENT_NAMES or path[0] == EVENT_ROOT:
        return (
            f"{where}: {name!r} is only known while an event is decided; a segment can use profile "
            "fields, attributes.* and cart.*"
        )
    return f"{where}: {name!r} cannot be used in a segment"


@dataclass(frozen=True)
class Rule:
    """A compiled rule; immutable, so compiled rules are shared through the cache."""

    text: str
    root: _Node

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        return self.root.evaluate(context)

    def to_q(self) -> Q:
        return self.root.to_q()

    @property
    def names(self) -> list[str]:
        return sorted({".".join(path) for path, _ in self.root.names()})


class _Compiler:
    def __init__(self, text: str) -> None:
        self.text = text

    def where(self, node: ast.AST) -> str:
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0) + 1
        return f"line {line}, col {col}"

    def source(self, node: ast.AST) -> str:
        segment = ast.get_source_segment(self.text, node) or type(node).__name__
        return segment if len(segment) <= 60 else segment[:57] + "..."

    def refuse(self, node: ast.AST, what: str) -> RuleError:
        return RuleError(
            f"{self.where(node)}: {what}: `{self.source(node)}`",
            details={"line": getattr(node, "lineno", 1), "col": getattr(node, "col_offset", 0) + 1},
        )

    def boolean(self, node: ast.expr, depth: int = 0) -> _Node:
        if depth > MAX_NESTING:
            # Deep nesting has no business use and would make the SQL and the evaluation recurse deeply.
            raise self.refuse(node, f"rules may nest and/or/not at most {MAX_NESTING} deep")
        if isinstance(node, ast.BoolOp):
            op = "and" if isinstance(node.op, ast.And) else "or"
            return _BoolOp(op, tuple(self.boolean(value, depth + 1) for value in node.values))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return _Not(self.boolean(node.operand, depth + 1))
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Name | ast.Attribute | ast.Constant):
            raise self.refuse(node, "expected a comparison such as `attributes.vip == true`")
        raise self.refuse(node, self.describe(node))

    def describe(self, node: ast.AST) -> str:
        for node_type, description in _DESCRIPTIONS.items():
            if isinstance(node, node_type):
                return description
        if isinstance(node, ast.UnaryOp):
            return "this operator is not allowed"
        return f"{type(node).__name__} is not allowed"

    def compare(self, node: ast.Compare) -> _Node:
        parts: list[_Node] = []
        left = node.left
        for op_node, right in zip(node.ops, node.comparators, strict=True):
            parts.append(self.pair(node, left, _OPS[type(op_node)], right))
            left = right
        # A chained comparison (0.5 < score <= 0.9) means each pair holds.
        return parts[0] if len(parts) == 1 else _BoolOp("and", tuple(parts))

    def pair(self, node: ast.Compare, left: ast.expr, op: str, right: ast.expr) -> _Node:
        left_path, right_path = self.path(left), self.path(right)
        if op in ("in", "not_in"):
            if left_path is None:
                raise self.refuse(left, f"`{_SYMBOLS[op]}` needs a name on its left")
            if not isinstance(right, ast.List):
                raise self.refuse(
                    right, f'`{_SYMBOLS[op]}` needs a list literal on its right, e.g. ["fr", "en"]'
                )
            if len(right.elts) > MAX_LIST_LENGTH:
                raise self.refuse(right, f"lists are limited to {MAX_LIST_LENGTH} items")
            items = tuple(self.literal(item) for item in right.elts)
            for item_node, item in zip(right.elts, items, strict=True):
                if item is None:
                    raise self.refuse(item_node, "null cannot be in a list; use `== null`")
            return _Compare(left_path, op, items, self.where(left))
        if left_path is not None and right_path is not None:
            raise self.refuse(node, "compare a name with a literal, not two names")
        if left_path is None and right_path is None:
            raise self.refuse(node, "compare a name with a literal, not two literals")
        if left_path is None:
            assert right_path is not None
            literal_node, path, op = left, right_path, _FLIPPED[op]
            where = self.where(right)
        else:
            literal_node, path, where = right, left_path, self.where(left)
        if isinstance(literal_node, ast.List):
            raise self.refuse(literal_node, "a list can only follow `in` or `not in`")
        literal = self.literal(literal_node)
        if op in _ORDERING and _kind(literal) != "number":
            raise self.refuse(literal_node, f"`{_SYMBOLS[op]}` needs a number")
        return _Compare(path, op, literal, where)

    def path(self, node: ast.expr) -> tuple[str, ...] | None:
        """The dotted name of ``node``, or None when it is a literal; anything else is refused."""
        parts: list[str] = []
        current: ast.expr = node
        while isinstance(current, ast.Attribute):
            parts.append(current.attr)
            current = current.value
        if not isinstance(current, ast.Name):
            if parts:
                raise self.refuse(node, "only dotted names like cart.total are allowed")
            if isinstance(current, ast.Constant | ast.List) or (
                isinstance(current, ast.UnaryOp) and isinstance(current.op, ast.USub | ast.UAdd)
            ):
                return None
            raise self.refuse(current, self.describe(current))
        if not parts and current.id in _LITERAL_NAMES:
            return None
        parts.append(current.id)
        path = tuple(reversed(parts))
        if len(path) > MAX_NAME_PARTS:
            raise self.refuse(node, f"names are limited to {MAX_NAME_PARTS} parts")
        for part in path:
            if part.startswith("_"):
                raise self.refuse(node, "names may not start with '_'")
        self.check_name(node, path)
        return path

    def check_name(self, node: ast.expr, path: tuple[str, ...]) -> None:
        root = path[0]
        if root in JSON_ROOTS or root == EVENT_ROOT:
            if len(path) == 1:
                raise self.refuse(node, f"name a field of {root}, e.g. {root}.total")
            return
        if root in PROFILE_FIELDS or root in EVENT_NAMES:
            if len(path) > 1:
                raise self.refuse(node, f"{root} has no fields")
            return
        known = ", ".join([*PROFILE_FIELDS, *sorted(EVENT_NAMES), "attributes.*", "cart.*", "event.*"])
        raise self.refuse(node, f"unknown name {root!r} (known: {known})")

    def literal(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Name) and node.id in _LITERAL_NAMES:
            return _LITERAL_NAMES[node.id]
        sign = 1
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            sign = -1 if isinstance(node.op, ast.USub) else 1
            if not (isinstance(node.operand, ast.Constant) and _kind(node.operand.value) == "number"):
                raise self.refuse(node, "a sign can only precede a number")
            node = node.operand
        if isinstance(node, ast.Constant):
            value = node.value
            if value is None or isinstance(value, bool):
                return value
            if isinstance(value, str):
                return self.string(node, value)
            if isinstance(value, int | float) and not isinstance(value, bool):
                if isinstance(value, float) and not math.isfinite(value):
                    raise self.refuse(node, "numbers must be finite")
                if len(ast.get_source_segment(self.text, node) or "") > MAX_NUMBER_CHARS:
                    raise self.refuse(node, f"numbers are limited to {MAX_NUMBER_CHARS} characters")
                if abs(value) > MAX_NUMBER:
                    raise self.refuse(node, f"numbers must be between -{MAX_NUMBER:,} and {MAX_NUMBER:,}")
                return sign * value
            raise self.refuse(node, "only strings, numbers, true, false and null are literals")
        if isinstance(node, ast.Name | ast.Attribute):
            raise self.refuse(node, "expected a literal here")
        raise self.refuse(node, self.describe(node))

    def string(self, node: ast.expr, value: str) -> str:
        if len(value) > MAX_STRING_LENGTH:
            raise self.refuse(node, f"strings are limited to {MAX_STRING_LENGTH} characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            unencodable = True
        else:
            unencodable = "\x00" in value
        if unencodable:
            raise self.refuse(node, "strings may not contain NUL or unpaired surrogate characters")
        return value


def _parse(text: str) -> ast.Expression:
    """Parse one expression; a rule may span several lines, as if it were inside parentheses."""
    if "\n" not in text:
        return ast.parse(text, mode="eval")
    try:
        return ast.parse(text, mode="eval")
    except SyntaxError:
        if not _balanced(text):
            raise
    # Wrapped on lines of their own so line and column numbers stay those of the original text.
    tree = ast.parse("(\n" + text + "\n)", mode="eval")
    ast.increment_lineno(tree, -1)
    return tree


def _balanced(text: str) -> bool:
    depth = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.OP and token.string in "([{":
                depth += 1
            elif token.type == tokenize.OP and token.string in ")]}":
                depth -= 1
                if depth < 0:
                    return False
    except (tokenize.TokenError, SyntaxError):
        return depth >= 0
    return True


@functools.lru_cache(maxsize=2048)
def compile_rule(text: str) -> Rule:
    """Parse ``text`` into a Rule; an empty text always matches. Raises RuleError naming line and column."""
    stripped = text.strip()
    if not stripped:
        return Rule(text=text, root=_Constant(True))
    if len(text) > MAX_RULE_LENGTH:
        raise RuleError(f"a rule is limited to {MAX_RULE_LENGTH} characters")
    try:
        tree = _parse(stripped)
    except SyntaxError as error:
        line, col = error.lineno or 1, error.offset or 1
        raise RuleError(
            f"line {line}, col {col}: syntax error: {error.msg}", details={"line": line, "col": col}
        ) from None
    except (RecursionError, MemoryError, ValueError) as error:
        raise RuleError(f"the rule cannot be parsed: {type(error).__name__}") from None
    compiler = _Compiler(stripped)
    try:
        root = compiler.boolean(tree.body)
    except RecursionError:
        raise RuleError("the rule is nested too deeply") from None
    return Rule(text=text, root=root)


def validate_rule(text: str, *, for_segment: bool) -> None:
    """Raise RuleError unless ``text`` compiles (and, for a segment, can run as a database query)."""
    rule = compile_rule(text)
    if for_segment:
        for path, where in rule.root.names():
            root = path[0]
            if not (root in JSON_ROOTS or (root in PROFILE_FIELDS and len(path) == 1)):
                raise RuleError(_not_queryable_message(path, where))


def profile_rule_context(profile: Profile, *, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The in-memory context a rule sees: profile fields at top level, plus the event when deciding one.

    ``cart`` is the event's cart when the event carries one (it is the freshest), else the last cart seen.
    """
    context: dict[str, Any] = {name: getattr(profile, name) for name in PROFILE_FIELDS}
    context["attributes"] = dict(profile.attributes or {})
    context["cart"] = dict(profile.last_cart or {})
    if event is not None:
        context["event"] = dict(event)
        if isinstance(event.get("cart"), Mapping):
            context["cart"] = dict(event["cart"])
        for name in EVENT_NAMES:
            if name in event:
                context[name] = event[name]
    return context
