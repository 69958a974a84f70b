"""Sandboxed rendering of marketer-authored content (see docs/templates.md).

Templates are written by marketers and filled with shopper data, so both sides are untrusted:

* Jinja2's ``ImmutableSandboxedEnvironment`` refuses ``__dunder__`` and internal attributes and mutation;
  an unsafe attribute raises at once instead of rendering as empty;
* the template itself is checked before it runs: no function or method calls, no macros, imports,
  ``set``/``with`` blocks (they are how a template doubles a string a thousand times), at most two nested
  loops, and the ``*``, ``**`` and ``%`` operators are bounded; the only globals are the context below;
* the context is an allow-list of top-level names holding plain dicts, lists and primitives, deep-copied
  from what the caller passes, never a model instance;
* templates and outputs are size-limited; HTML is autoescaped in HTML fields only;
* each render has a budget (see ``_Budget``): loop iterations in all, counted before a loop starts, and
  CPU time of the rendering thread per field, checked at every lookup, operator, filter, loop and output
  chunk. A template that exceeds it is refused on save (validation renders it) and fails that one render
  in the decision path (``TemplateRenderError.out_of_time`` says it was the time).

Undefined policy: a top-level name outside the allow-list is always an error (so a typo is refused on
save, and Jinja's own ``self`` is unreachable), while a missing key inside the data
(``profile.attributes.tier`` for a shopper without a tier) renders as empty text — use ``|default("…")``.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import math
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from jinja2 import ChainableUndefined, nodes, pass_context
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.filters import FILTERS
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.tests import TESTS

from core.errors import UnprocessableError

MAX_TEMPLATE_CHARS = 20_000
MAX_OUTPUT_CHARS = 100_000
MAX_SEQUENCE_RESULT = 10_000
MAX_LOOP_DEPTH = 2
TEMPLATE_FILENAME = "<template>"

_REPR = re.compile(r"<[^>]*>|0x[0-9a-fA-F]+|/[\w./-]+")

# ``first_name`` is a top-level shorthand for ``profile.first_name``, the variable marketers use most.
CONTEXT_NAMES = ("profile", "cart", "event", "campaign", "variant", "discount_code", "links", "first_name")

_ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Slice,
    nodes.Const,
    nodes.List,
    nodes.Tuple,
    nodes.Filter,
    nodes.Test,
    nodes.Keyword,
    nodes.If,
    nodes.For,
    nodes.CondExpr,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Neg,
    nodes.Pos,
    nodes.Compare,
    nodes.Operand,
    nodes.Concat,
    nodes.Add,
    nodes.Sub,
    nodes.Mul,
    nodes.Div,
    nodes.FloorDiv,
    nodes.Mod,
    nodes.Pow,
)
_NODE_NAMES: dict[type[nodes.Node], str] = {
    nodes.Call: "function and method calls are not allowed",
    nodes.Macro: "macros are not allowed",
    nodes.CallBlock: "call blocks are not allowed",
    nodes.Assign: "{% set %} is not allowed",
    nodes.AssignBlock: "{% set %} is not allowed",
    nodes.With: "{% with %} is not allowed",
    nodes.Import: "imports are not allowed",
    nodes.FromImport: "imports are not allowed",
    nodes.Include: "{% include %} is not allowed",
    nodes.Extends: "{% extends %} is not allowed",
    nodes.Block: "{% block %} is not allowed",
    nodes.FilterBlock: "{% filter %} blocks are not allowed",
    nodes.Dict: "dict literals are not allowed",
}

_CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "CHF": "CHF", "CAD": "CA$", "AUD": "A$"}


class TemplateRenderError(UnprocessableError):
    code = "template_error"

    def __init__(
        self, message: str, *, field: str, line: int | None = None, out_of_time: bool = False
    ) -> None:
        where = f"{field}, line {line}" if line is not None else field
        super().__init__(f"{where}: {message}", details={"field": field, "line": line})
        self.field = field
        self.line = line
        self.reason = message
        # Refused only for its time (now, or lately: see _SLOW_UNTIL), not for what it is: the same render
        # may pass later (a send run retries such a member).
        self.out_of_time = out_of_time


class _Undefined(ChainableUndefined):
    """Missing data renders as empty text, and chains (``a.b.c``) stay empty; see the module docstring."""

    __slots__ = ()


class _OverBudget(SecurityError):
    """Raised inside a render that exceeded its budget; reported like any refused construct."""


class _OutOfTime(_OverBudget):
    pass


_CLOCK_EVERY = 16


@dataclass
class _Budget:
    """What one message's render may spend: loop iterations in all its fields, and for each field CPU
    time until ``deadline`` on the rendering thread's own clock (``time.thread_time``): a thread waiting
    for a core, for the GIL or for I/O on a loaded machine spends none of it, so a valid template is not
    refused because the machine is busy; a template that is slow in itself is.

    Reading that clock is a system call (about 3 µs, against 0.2 µs for the monotonic clock), so a tick
    reads it only every ``_CLOCK_EVERY`` ticks: between two readings run at most that many lookups,
    operators or filters, each bounded in size (``MAX_SEQUENCE_RESULT``, ``MAX_OUTPUT_CHARS``)."""

    iterations_left: int
    deadline: float
    max_iterations: int
    timeout_ms: int
    ticks: int = 0

    @classmethod
    def start(cls) -> _Budget:
        max_iterations = int(settings.TEMPLATE_MAX_LOOP_ITERATIONS)
        timeout_ms = int(settings.TEMPLATE_RENDER_TIMEOUT_MS)
        return cls(
            iterations_left=max_iterations,
            # Each field's clock starts when it renders (restart_clock).
            deadline=math.inf,
            max_iterations=max_iterations,
            timeout_ms=timeout_ms,
        )

    def spend(self, iterations: int) -> None:
        self.iterations_left -= iterations
        if self.iterations_left < 0:
            raise _OverBudget(
                f"loops would run more than {self.max_iterations:,} iterations "
                "(the limit is TEMPLATE_MAX_LOOP_ITERATIONS)"
            )
        self.tick()

    def restart_clock(self) -> None:
        self.deadline = time.thread_time() + self.timeout_ms / 1000

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks % _CLOCK_EVERY:
            return
        if time.thread_time() > self.deadline:
            raise _OutOfTime(
                f"rendering took longer than {self.timeout_ms} ms (the limit is TEMPLATE_RENDER_TIMEOUT_MS)"
            )


# Templates (by source) that ran out of time lately in this process, with when they may run again. A
# template over the iteration budget is refused before its loops run, at no cost; one that runs out of
# time costs the whole timeout each time, so without this a campaign whose template always does would
# slow every batch of the consumer by that much per matching event.
_SLOW_UNTIL: dict[tuple[str, bool], float] = {}
_SLOW_MAX_ENTRIES = 1024


# The budget of the render running in this thread (or task). A context variable rather than an argument:
# the sandbox's hooks and the filters are called by Jinja's generated code, which passes no state of ours.
# Outside a render (compiling a text-only field) there is none and nothing is limited.
_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("template_budget", default=None)


def _tick() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.tick()


# The loop iterable of every ``{% for %}`` is passed through this filter (see ``_budget_loops``).
_LOOP_FILTER = "_loop_budget"


# pass_context only so that Jinja never folds the filter into a constant when the template compiles:
# ``{% for a in [0, 0, …] %}`` would otherwise be iterated uncounted.
@pass_context
def _loop_budget(context: Context, iterable: Any) -> Any:
    budget = _BUDGET.get()
    if budget is None:
        return iterable
    try:
        size = len(iterable)
    except TypeError:
        return _counted(iterable, budget)
    # Counted before the loop starts: an inner loop's whole length is spent each time it begins, so
    # nested loops are refused at the first inner loop that would go over, before burning any CPU.
    budget.spend(size)
    return iterable


def _counted(iterable: Iterable[Any], budget: _Budget) -> Iterator[Any]:
    for item in iterable:
        budget.spend(1)
        yield item


def _with_tick(function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that checks the deadline first (``wraps`` keeps Jinja's pass_context/… marker)."""

    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        _tick()
        return function(*args, **kwargs)

    return checked


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%", "//", "+"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # The default renders an unsafe attribute as an empty undefined; fail loudly instead so an
        # attack never passes for an empty string.
        raise SecurityError(f"access to {attribute!r} is not allowed")

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Data is plain dicts and lists: ``a.b`` is a key lookup and nothing else. Python attributes
        # (``profile.items`` the method, ``name.upper``) are never reachable.
        _tick()
        if attribute.startswith("_"):
            return self.unsafe_undefined(obj, attribute)
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return self.undefined(obj=obj, name=attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        if isinstance(argument, str):
            return self.getattr(obj, argument)
        if (
            isinstance(obj, list | str)
            and isinstance(argument, int | slice)
            and not isinstance(argument, bool)
        ):
            try:
                return obj[argument]
            except IndexError:
                pass
        return self.undefined(obj=obj, name=str(argument))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "**":
            if not _is_number(left) or not _is_number(right) or abs(right) > 64 or abs(left) > 10**6:
                raise SecurityError("'**' is limited to small numbers")
        elif operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if (
                    isinstance(sequence, str | list | tuple)
                    and isinstance(count, int)
                    and len(sequence) * count > MAX_SEQUENCE_RESULT
                ):
                    raise SecurityError("repetition result is too large")
        elif operator == "+":
            if (
                isinstance(left, str | list | tuple)
                and isinstance(right, str | list | tuple)
                and len(left) + len(right) > MAX_SEQUENCE_RESULT
            ):
                raise SecurityError("concatenation result is too large")
        elif operator == "%" and isinstance(left, str):
            raise SecurityError("'%' string formatting is not allowed")
        return super().call_binop(context, operator, left, right)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


@pass_context
def _money(context: Context, value: Any, currency: Any = "EUR") -> str:
    """``{{ cart.total|money(cart.currency) }}`` → "€129.90" in English, "129,90 €" in French."""
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        return ""
    code = str(currency or "EUR").upper()
    symbol = _CURRENCY_SYMBOLS.get(code, code)
    profile = context.get("profile")
    locale = str(profile.get("locale", "")) if isinstance(profile, Mapping) else ""
    whole, cents = f"{abs(amount):,.2f}".split(".")
    sign = "-" if amount < 0 else ""
    if locale.lower().startswith(("fr", "de", "es", "it", "nl", "pt")):
        separator = "\u202f" if locale.lower().startswith("fr") else "."
        return f"{sign}{whole.replace(',', separator)},{cents}\u00a0{symbol}"
    return f"{sign}{symbol}{whole}.{cents}"


_SAFE_FILTERS = (
    "default",
    "d",
    "upper",
    "lower",
    "title",
    "capitalize",
    "trim",
    "truncate",
    "escape",
    "e",
    "length",
    "count",
    "first",
    "last",
    "join",
    "round",
    "int",
    "float",
    "abs",
    "striptags",
    "urlencode",
    "string",
)


def _environment(*, autoescape: bool) -> _Environment:
    env = _Environment(autoescape=autoescape, undefined=_Undefined, auto_reload=False, cache_size=0)
    # Only an allow-list: no range/lipsum/cycler/joiner/namespace/dict globals, no format/center/replace
    # filters (string bombs), no safe filter (it would let shopper data inject HTML).
    env.globals.clear()
    env.filters = {name: _with_tick(FILTERS[name]) for name in _SAFE_FILTERS}
    env.filters["money"] = _with_tick(_money)
    env.filters[_LOOP_FILTER] = _loop_budget
    env.tests = dict(TESTS)
    return env


_TEXT_ENV = _environment(autoescape=False)
_HTML_ENV = _environment(autoescape=True)


def _check_tree(tree: nodes.Template, *, field: str) -> set[str]:
    """Refuse constructs outside the allow-list; returns the top-level names the template reads."""
    names: set[str] = set()
    loop_names: set[str] = set()

    def visit(node: nodes.Node, loop_depth: int) -> None:
        if not isinstance(node, _ALLOWED_NODES):
            what = next((label for kind, label in _NODE_NAMES.items() if isinstance(node, kind)), None)
            raise TemplateRenderError(
                what or f"{type(node).__name__} is not allowed",
                field=field,
                line=getattr(node, "lineno", None),
            )
        if isinstance(node, nodes.For):
            if loop_depth >= MAX_LOOP_DEPTH:
                raise TemplateRenderError(
                    f"loops may be nested at most {MAX_LOOP_DEPTH} deep", field=field, line=node.lineno
                )
            if node.recursive:
                raise TemplateRenderError("recursive loops are not allowed", field=field, line=node.lineno)
            targets = [node.target, *node.target.find_all(nodes.Name)]
            loop_names.update(target.name for target in targets if isinstance(target, nodes.Name))
            loop_names.add("loop")
            visit(node.iter, loop_depth)
            for child in [node.target, *node.body, *node.else_]:
                visit(child, loop_depth + 1)
            if node.test is not None:
                visit(node.test, loop_depth + 1)
            return
        if isinstance(node, nodes.Name) and node.ctx == "load":
            names.add(node.name)
            if node.name.startswith("_"):
                raise TemplateRenderError(f"{node.name!r} is not allowed", field=field, line=node.lineno)
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            raise TemplateRenderError(
                f"access to {node.attr!r} is not allowed", field=field, line=node.lineno
            )
        if isinstance(node, nodes.Filter) and node.name.startswith("_"):
            raise TemplateRenderError(f"No filter named {node.name!r}.", field=field, line=node.lineno)
        for child in node.iter_child_nodes():
            visit(child, loop_depth)

    visit(tree, 0)
    return names - loop_names


def _budget_loops(tree: nodes.Template) -> None:
    """Pass every loop's iterable through the budget filter, so each loop is counted as it starts."""
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.iter.lineno)


@functools.lru_cache(maxsize=1024)
def _compile(source: str, *, html: bool, field: str) -> tuple[Any, frozenset[str], str | None]:
    """(compiled template, top-level names it reads, its output when it is only text — else None).

    Many fields (a CTA label, a URL, a fixed discount code) hold no expression at all: their output does
    not depend on the context, so it is rendered once here and reused, sparing a sandboxed render and
    the context copy for each message."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateRenderError(f"template is longer than {MAX_TEMPLATE_CHARS} characters", field=field)
    env = _HTML_ENV if html else _TEXT_ENV
    try:
        tree = env.parse(source)
        names = _check_tree(tree, field=field)
        _budget_loops(tree)
        template = env.from_string(tree)
    except TemplateSyntaxError as error:
        raise TemplateRenderError(error.message or "syntax error", field=field, line=error.lineno) from None
    only_text = all(
        isinstance(node, nodes.Output) and all(isinstance(child, nodes.TemplateData) for child in node.nodes)
        for node in tree.body
    )
    return template, frozenset(names), str(template.render({})) if only_text and not names else None


def _template_line(error: BaseException) -> int | None:
    # Jinja rewrites tracebacks so that frames of the template carry its own line numbers.
    line = None
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == TEMPLATE_FILENAME:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def _plain(value: Any, *, depth: int = 0) -> Any:
    """A deep copy made only of dicts, lists and primitives: the template never sees a Python object."""
    if depth > 10:
        return None
    if value is None or isinstance(value, str | bool | int | float | Decimal):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): _plain(item, depth=depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item, depth=depth + 1) for item in value]
    # Anything else (a model, a function, a settings module) is dropped, never exposed.
    return None


def render_context(context: Mapping[str, Any], names: Collection[str] | None = None) -> dict[str, Any]:
    """The allow-listed, plain-data copy of ``context`` that templates render against; with ``names``,
    of those top-level names only (what the templates to render read: the decision path renders a
    message per decision and need not copy a shopper's attributes for a template that never reads them).
    """
    wanted = CONTEXT_NAMES if names is None else [name for name in CONTEXT_NAMES if name in names]
    plain = {name: _plain(context.get(name)) for name in wanted if name != "first_name"}
    for name in ("profile", "cart", "event", "campaign", "variant", "links"):
        if name in plain and not isinstance(plain[name], dict):
            plain[name] = {}
    if "discount_code" in plain:
        plain["discount_code"] = plain["discount_code"] or ""
    if "first_name" in wanted:
        profile = context.get("profile")
        first_name = profile.get("first_name") if isinstance(profile, Mapping) else None
        plain["first_name"] = _plain(first_name, depth=1) or ""
    return plain


def _render_one(field: str, source: str, context: Mapping[str, Any], *, html: bool, budget: _Budget) -> str:
    template, names, text = _compile(source, html=html, field=field)
    if text is not None:
        if len(text) > MAX_OUTPUT_CHARS:
            raise TemplateRenderError(f"output is longer than {MAX_OUTPUT_CHARS} characters", field=field)
        return text
    # Unknown top-level names are refused at every render, not only on save: Jinja binds some names itself
    # (``self`` is the template object) and only the allow-listed context may be read.
    unknown = sorted(names - set(CONTEXT_NAMES))
    if unknown:
        raise TemplateRenderError(
            f"unknown variable {unknown[0]!r} (available: {', '.join(CONTEXT_NAMES)})",
            field=field,
            line=_first_line(source, unknown[0], html=html),
        )
    slow_until = _SLOW_UNTIL.get((source, html))
    if slow_until is not None:
        if time.monotonic() < slow_until:
            raise TemplateRenderError(
                f"rendering took longer than {budget.timeout_ms} ms recently (the limit is "
                "TEMPLATE_RENDER_TIMEOUT_MS); not rendered again for TEMPLATE_SLOW_COOLOFF_SECONDS",
                field=field,
                out_of_time=True,
            )
        _SLOW_UNTIL.pop((source, html), None)
    # The time is per field, so that a field that runs out of it is the one to blame (see _SLOW_UNTIL).
    budget.restart_clock()
    token = _BUDGET.set(budget)
    try:
        chunks: list[str] = []
        size = 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateRenderError(f"output is longer than {MAX_OUTPUT_CHARS} characters", field=field)
            chunks.append(chunk)
            budget.tick()
    except TemplateRenderError:
        raise
    except SecurityError as error:
        if isinstance(error, _OutOfTime):
            if len(_SLOW_UNTIL) >= _SLOW_MAX_ENTRIES:
                _SLOW_UNTIL.clear()
            _SLOW_UNTIL[(source, html)] = time.monotonic() + float(settings.TEMPLATE_SLOW_COOLOFF_SECONDS)
        raise TemplateRenderError(
            str(error), field=field, line=_template_line(error), out_of_time=isinstance(error, _OutOfTime)
        ) from None
    except UndefinedError as error:
        raise TemplateRenderError(str(error), field=field, line=_template_line(error)) from None
    except TemplateError as error:
        raise TemplateRenderError(str(error), field=field, line=_template_line(error)) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, RecursionError, MemoryError) as error:
        # A template over surprising data (dividing by a zero total, comparing text with a number). The
        # message is trimmed of anything that looks like a Python repr so nothing internal leaks.
        if isinstance(error, ArithmeticError):
            message = "invalid arithmetic (division by zero?)"
        else:
            message = _REPR.sub("…", f"{type(error).__name__}: {error}")[:200]
        raise TemplateRenderError(message, field=field, line=_template_line(error)) from None
    finally:
        _BUDGET.reset(token)
    return "".join(chunks)


def _first_line(source: str, name: str, *, html: bool) -> int | None:
    env = _HTML_ENV if html else _TEXT_ENV
    for node in env.parse(source).find_all(nodes.Name):
        if node.name == name:
            return int(node.lineno)
    return None


def render_fields(
    fields: Mapping[str, str],
    context: Mapping[str, Any],
    *,
    html_fields: frozenset[str] = frozenset({"body_html"}),
) -> dict[str, str]:
    """Render each non-empty field (empty ones stay empty), all within one budget (see ``_Budget``).

    Raises TemplateRenderError naming the field and line.
    """
    # The names the fields read (compiled once per source, cached): only those are copied.
    names: set[str] = set()
    for field, source in fields.items():
        if source:
            _template, read, text = _compile(source, html=field in html_fields, field=field)
            if text is None:
                names |= read
    plain = render_context(context, names) if names else {}
    budget = _Budget.start()
    rendered: dict[str, str] = {}
    for field, source in fields.items():
        # A field that is only text renders without the context (see _compile).
        rendered[field] = (
            _render_one(field, source, plain, html=field in html_fields, budget=budget) if source else ""
        )
    return rendered


def validate_fields(
    fields: Mapping[str, str],
    *,
    html_fields: frozenset[str] = frozenset({"body_html"}),
    locales: Iterable[str] = ("en",),
) -> None:
    """Compile and render every field with sample data, within the budget of one render (per locale);
    unknown top-level names are refused."""
    for field, source in fields.items():
        if source:
            # Compiled first (and cached): compiling is not part of a render's time budget.
            _compile(source, html=field in html_fields, field=field)
    for locale in locales:
        plain = render_context(sample_context(locale=locale))
        budget = _Budget.start()
        for field, source in fields.items():
            if source:
                _render_one(field, source, plain, html=field in html_fields, budget=budget)


def sample_context(*, locale: str = "en") -> dict[str, Any]:
    """Realistic data for validation and the admin preview."""
    french = locale.lower().startswith("fr")
    return {
        "profile": {
            "user_id": "u-sample",
            "first_name": "Camille" if french else "Ada",
            "locale": locale,
            "attributes": {"tier": "gold", "favourite_category": "running"},
        },
        "cart": {
            "currency": "EUR",
            "total": Decimal("129.90"),
            "item_count": 2,
            "items": [
                {
                    "sku": "SKU-1",
                    "name": "Chaussure de trail" if french else "Trail shoe",
                    "price": Decimal("99.90"),
                    "quantity": 1,
                    "image_url": "https://shop.example.com/img/sku-1.jpg",
                },
                {
                    "sku": "SKU-7",
                    "name": "Chaussettes" if french else "Running socks",
                    "price": Decimal("15.00"),
                    "quantity": 2,
                    "image_url": "https://shop.example.com/img/sku-7.jpg",
                },
            ],
        },
        "event": {
            "event_type": "prediction",
            "model": "cart_abandonment",
            "score": 0.83,
            "cart_id": "c-sample",
            "session_id": "s-sample",
        },
        "campaign": {"name": "Sample campaign"},
        "variant": {"name": "Sample variant"},
        "discount_code": "SAMPLE10",
        "links": {
            "unsubscribe_url": "https://engine.example.com/u/sample-token",
            "click_url": "https://engine.example.com/c/sample-token",
            "cart_url": "https://shop.example.com/cart",
        },
    }
