"""The layers of docs/architecture.md hold: imports point down, and no app writes another app's models.

Read from the source with ``ast`` (every import counts, function-level ones included), so a violation fails
here before it shows up as an import cycle or as a table with two writers. The rules:

- An app imports only apps in layers below its own (``LAYERS``, top first); two apps of one layer never
  import each other. ``intervention_engine`` is the wiring on top: no app imports it.
- An app never writes another app's models: no ``Model.objects.<write>`` chain (``WRITES``), no
  ``.save()``/``.delete()`` on an instance it built or fetched from another app's model in the same function,
  no bulk insert of it through ``core.bulk``. It calls the owning app's services instead.
- An app never reads another app's table layout (``Model._meta``), which raw SQL uses: the owning app's
  selectors expose the table name when a report needs to join it.

What the walk cannot see: a write through an instance that came from elsewhere (a parameter, a related
object), or a table named in a SQL string literal. Review still covers those.

The tests hold one more rule: no module under ``tests/`` imports a test module (``tests.*.test_*``) or a
conftest. What tests share lives in ``tests/fixtures.py`` (builders) and ``tests/processes.py``; pytest
fixtures that several directories use live in the root conftest.
"""

from __future__ import annotations

import ast
import functools
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db.models import Model

ROOT = Path(__file__).resolve().parent.parent

# Top first. An app may import any app in a later layer, none in its own or an earlier one.
LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"intervention_engine"}),  # wiring: settings, urls, asgi, celery, admin site
    frozenset({"delivery"}),  # the decision path
    frozenset({"gateway", "notifications"}),  # the WebSocket gateway; the other channels' sends
    frozenset({"tracking"}),
    frozenset({"interventions"}),
    frozenset({"campaigns"}),
    frozenset({"personalization"}),
    # docs/architecture.md draws these three as one floor; core is below the other two because it
    # imports no app and both of them use it.
    frozenset({"api", "messaging"}),
    frozenset({"core"}),
)
RANK = {app: rank for rank, layer in enumerate(LAYERS) for app in layer}

# Manager methods that write, or lock rows for a write.
WRITES = frozenset(
    {
        "create",
        "update",
        "delete",
        "bulk_create",
        "bulk_update",
        "get_or_create",
        "update_or_create",
        "select_for_update",
    }
)
MANAGERS = frozenset({"objects", "_default_manager", "_base_manager"})
# core.bulk's writers take the model first.
BULK_WRITERS = frozenset({"core.bulk.rows_insert", "core.bulk.dicts_insert"})
# Calls that yield one instance, whose .save() or .delete() is then a write to that model.
INSTANCE_GETTERS = frozenset({"get", "first", "last", "latest", "earliest"})


@dataclass(frozen=True)
class Violation:
    path: str  # relative to the project root
    line: int
    rule: str  # "import", "write", "_meta" or "test import"
    message: str

    @property
    def key(self) -> str:
        """Stable across unrelated edits (no line number): what the allowlist names."""
        return f"{self.path}: {self.message}"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def app_of(module: str) -> str | None:
    top = module.split(".", 1)[0]
    return top if top in RANK else None


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """Lines inside ``if TYPE_CHECKING:`` blocks."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and (
            (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
            or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
        ):
            for child in node.body:
                for inner in ast.walk(child):
                    if hasattr(inner, "lineno"):
                        lines.add(inner.lineno)
    return lines


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of one function (or module) body, not those of the functions defined inside it."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            stack.extend(ast.iter_child_nodes(node))


@functools.cache
def _model_owner(qualified: str) -> str | None:
    """The app that defines the model a dotted name points to, or None if it is not a model."""
    module, _, name = qualified.rpartition(".")
    if not module or app_of(module) is None:
        return None
    try:
        value = getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None
    if isinstance(value, type) and issubclass(value, Model):
        return app_of(value.__module__)
    return None


class _ModuleChecker:
    def __init__(self, *, path: str, module: str, is_package: bool, source: str) -> None:
        self.path = path
        self.module = module
        self.app = app_of(module)
        self.is_package = is_package
        self.tree = ast.parse(source, filename=path)
        self.type_checking = _type_checking_lines(self.tree)
        self.names: dict[str, str] = {}  # local name -> dotted name it was imported as
        self.violations: list[Violation] = []

    def _add(self, node: ast.AST, rule: str, message: str) -> None:
        self.violations.append(Violation(self.path, getattr(node, "lineno", 0), rule, message))

    def run(self) -> list[Violation]:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self._import(node, alias.name)
                    if alias.asname:
                        self.names[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".", 1)[0]
                        self.names[top] = top
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, self.module, self.is_package)
                if base != app_of(base):
                    self._import(node, base)
                for alias in node.names:
                    self.names[alias.asname or alias.name] = f"{base}.{alias.name}"
                    if base == app_of(base):  # ``from campaigns import services``: name the submodule
                        self._import(node, f"{base}.{alias.name}")
        self._manager_writes()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Attribute):
                self._meta(node)
            elif isinstance(node, ast.Call):
                self._bulk_write(node)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module):
                self._instance_writes(node)
        return sorted(self.violations, key=lambda v: v.line)

    # --- imports

    def _import(self, node: ast.stmt, target: str) -> None:
        other = app_of(target)
        if self.app is None or other is None or other == self.app:
            return
        # Allowed: imports only type checkers see. They give a signature its types without a runtime
        # dependency, so they cannot form an import cycle or a hidden call path upward.
        if node.lineno in self.type_checking:
            return
        if RANK[other] > RANK[self.app]:
            return
        where = "its own layer" if RANK[other] == RANK[self.app] else "a layer above"
        self._add(node, "import", f"imports {target} ({other} is in {where}: {self.app} may not import it)")

    # --- writes and table layout

    def _qualified(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return self.names.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self._qualified(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def _foreign_model(self, node: ast.expr) -> str | None:
        """``app.Model`` if ``node`` names a model of another app."""
        if self.app is None:
            return None
        qualified = self._qualified(node)
        owner = _model_owner(qualified) if qualified else None
        if owner is None or owner == self.app:
            return None
        assert qualified is not None
        return f"{owner}.{qualified.rpartition('.')[2]}"

    def _manager_chain(self, node: ast.expr) -> tuple[ast.expr, list[str]] | None:
        """``M.objects.filter(...).update`` -> (``M``, [objects, filter, update]); None without a manager."""
        attrs: list[str] = []
        while True:
            if isinstance(node, ast.Call):
                node = node.func
            elif isinstance(node, ast.Subscript):
                node = node.value
            elif isinstance(node, ast.Attribute):
                if node.attr in MANAGERS:
                    return node.value, [node.attr, *attrs[::-1]]
                attrs.append(node.attr)
                node = node.value
            else:
                return None

    def _manager_writes(self) -> None:
        """One violation per manager chain, naming the whole chain (``objects.select_for_update.filter``)."""
        chains: dict[tuple[int, int], tuple[ast.Call, str, list[str]]] = {}
        for call in ast.walk(self.tree):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
                continue
            if call.func.attr not in WRITES:
                continue
            chain = self._manager_chain(call.func)
            if chain is None:
                continue
            model = self._foreign_model(chain[0])
            if model is None:
                continue
            # The model expression's position identifies the chain; the outermost call names it fully.
            at = (chain[0].lineno, chain[0].col_offset)
            if at not in chains or len(chain[1]) > len(chains[at][2]):
                chains[at] = (call, model, chain[1])
        for call, model, attrs in chains.values():
            self._add(call, "write", f"writes {model} ({'.'.join(attrs)})")

    def _bulk_write(self, call: ast.Call) -> None:
        if self._qualified(call.func) not in BULK_WRITERS or not call.args:
            return
        model = self._foreign_model(call.args[0])
        if model:
            self._add(call, "write", f"writes {model} ({self._qualified(call.func)})")

    def _meta(self, node: ast.Attribute) -> None:
        if node.attr != "_meta":
            return
        model = self._foreign_model(node.value)
        if model:
            self._add(node, "_meta", f"reads {model}._meta")

    def _instance_writes(self, scope: ast.AST) -> None:
        """``x = OtherModel(...)`` or ``x = OtherModel.objects.get(...)`` then ``x.save()`` / ``x.delete()``,
        and ``for x in OtherModel.objects...: x.save()``, within one function body."""
        bound: dict[str, str] = {}
        body = list(_own_nodes(scope))
        for node in body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                model = self._instance_of(node.value, single=True)
                if model:
                    bound[node.targets[0].id] = model
            elif isinstance(node, ast.For) and isinstance(node.target, ast.Name):
                model = self._instance_of(node.iter, single=False)
                if model:
                    bound[node.target.id] = model
        for node in body:
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"save", "delete"}
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in bound
            ):
                self._add(node, "write", f"writes {bound[node.func.value.id]} (instance.{node.func.attr}())")

    def _instance_of(self, value: ast.expr, *, single: bool) -> str | None:
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name | ast.Attribute):
            model = self._foreign_model(value.func)
            if model and single:
                return model
        chain = self._manager_chain(value)
        if chain is None or (single and chain[1][-1] not in INSTANCE_GETTERS):
            return None
        return self._foreign_model(chain[0])


def check_source(*, path: str, source: str) -> list[Violation]:
    """The violations in one module, ``path`` relative to the project root (``tracking/services.py``)."""
    module = _module_name(ROOT / path, ROOT)
    return _ModuleChecker(
        path=path, module=module, is_package=path.endswith("__init__.py"), source=source
    ).run()


def app_files(root: Path = ROOT) -> Iterator[Path]:
    for app in sorted(RANK):
        for path in sorted((root / app).rglob("*.py")):
            if "migrations" not in path.relative_to(root).parts:
                yield path


def check_tree(root: Path = ROOT) -> list[Violation]:
    found: list[Violation] = []
    for path in app_files(root):
        found.extend(check_source(path=str(path.relative_to(root)), source=path.read_text()))
    return found


def _is_test_module(module: str) -> bool:
    """``tests.campaigns.test_admin`` or anything in it, ``tests.delivery.conftest``: what pytest loads,
    which no other module may import (shared builders live in ``tests.fixtures``)."""
    parts = module.split(".")
    return parts[0] == "tests" and any(p == "conftest" or p.startswith("test_") for p in parts[1:])


def check_test_imports(*, path: str, source: str) -> list[Violation]:
    """The imports of another test module or of a conftest in one module under ``tests/``."""
    module = _module_name(ROOT / path, ROOT)
    is_package = path.endswith("__init__.py")
    found: list[Violation] = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            if _is_test_module(target):
                found.append(Violation(path, node.lineno, "test import", f"imports {target}"))
                break
    return found


def check_tests(root: Path = ROOT) -> list[Violation]:
    found: list[Violation] = []
    for path in sorted((root / "tests").rglob("*.py")):
        found.extend(check_test_imports(path=str(path.relative_to(root)), source=path.read_text()))
    return found


@pytest.fixture(scope="module")
def violations() -> list[Violation]:
    return check_tree()


def test_it_finds_every_app_of_the_layers() -> None:
    # given / when
    missing = [app for app in RANK if not (ROOT / app / "__init__.py").exists()]
    not_layered = [
        p.name
        for p in ROOT.iterdir()
        if (p / "apps.py").exists() and p.name not in RANK  # a Django app nobody placed in a layer
    ]

    # then
    assert missing == []
    assert not_layered == []


def test_it_keeps_imports_pointing_down(violations: list[Violation]) -> None:
    # given / when
    upward = [str(v) for v in violations if v.rule == "import"]

    # then
    assert upward == [], "imports that point up or sideways:\n" + "\n".join(upward)


def test_it_has_no_app_writing_another_apps_models(violations: list[Violation]) -> None:
    # given / when
    writes = [str(v) for v in violations if v.rule == "write"]

    # then
    assert writes == [], "writes to another app's models:\n" + "\n".join(writes)


def test_it_has_no_app_reading_another_apps_table_layout(violations: list[Violation]) -> None:
    # given / when
    metas = [str(v) for v in violations if v.rule == "_meta"]

    # then
    assert metas == [], "another app's table layout (its selectors expose the table):\n" + "\n".join(metas)


def test_it_has_no_test_importing_another_test_module_or_a_conftest() -> None:
    # given / when
    found = [str(v) for v in check_tests()]

    # then
    assert found == [], "test modules importing test modules (shared builders: tests/fixtures.py):\n" + (
        "\n".join(found)
    )


# --- The checker catches what it is for -------------------------------------------------------------------


def test_it_catches_an_upward_import_at_module_and_function_level() -> None:
    # given
    source = (
        "from delivery.services import decide\n"
        "def f():\n"
        "    from gateway import realtime\n"
        "    import intervention_engine.settings\n"
    )

    # when
    found = check_source(path="tracking/synthetic.py", source=source)

    # then
    assert [(v.rule, v.line) for v in found] == [("import", 1), ("import", 3), ("import", 4)]


def test_it_catches_a_sideways_import_and_core_importing_an_app() -> None:
    # given
    gateway_source = "from notifications.services import send\n"
    core_source = "import api.models\n"

    # when
    sideways = check_source(path="gateway/synthetic.py", source=gateway_source)
    from_core = check_source(path="core/synthetic.py", source=core_source)

    # then
    assert [v.message for v in sideways] == [
        "imports notifications.services (notifications is in its own layer: gateway may not import it)"
    ]
    assert [v.message for v in from_core] == [
        "imports api.models (api is in a layer above: core may not import it)"
    ]


def test_it_allows_downward_and_type_checking_imports() -> None:
    # given
    source = (
        "from typing import TYPE_CHECKING\n"
        "from interventions.models import Intervention\n"
        "from core.errors import ApplicationError\n"
        "if TYPE_CHECKING:\n"
        "    from delivery.services import Decision\n"
    )

    # when
    found = check_source(path="tracking/synthetic.py", source=source)

    # then
    assert found == []


def test_it_catches_writes_to_another_apps_models() -> None:
    # given
    source = (
        "from interventions.models import Delivery, Intervention\n"
        "from interventions import models as im\n"
        "from core.bulk import rows_insert\n"
        "from tracking.models import TrackingEvent\n"
        "def f(ids):\n"
        "    Intervention.objects.filter(pk__in=ids).update(status='delivered')\n"
        "    list(im.Delivery.objects.select_for_update().filter(pk__in=ids))\n"
        "    Delivery.objects.bulk_create([])\n"
        "    rows_insert(Intervention, [])\n"
        "    one = Intervention.objects.get(pk=ids[0])\n"
        "    one.save()\n"
        "    for d in Delivery.objects.filter(pk__in=ids):\n"
        "        d.delete()\n"
        "    TrackingEvent.objects.filter(pk__in=ids).delete()\n"  # its own model: fine
        "    Intervention.objects.filter(pk__in=ids).count()\n"  # a read: fine (through selectors, by review)
    )

    # when
    found = check_source(path="tracking/synthetic.py", source=source)

    # then
    assert [(v.rule, v.line) for v in found] == [
        ("write", 6),
        ("write", 7),
        ("write", 8),
        ("write", 9),
        ("write", 11),
        ("write", 13),
    ]


def test_it_catches_another_apps_meta() -> None:
    # given
    source = (
        "from interventions.models import Intervention\n"
        "from tracking.models import TrackingEvent\n"
        "sql = f'SELECT 1 FROM {Intervention._meta.db_table} JOIN {TrackingEvent._meta.db_table}'\n"
    )

    # when
    found = check_source(path="tracking/synthetic.py", source=source)

    # then
    assert [(v.rule, v.message) for v in found] == [("_meta", "reads interventions.Intervention._meta")]


def test_it_fails_the_tree_check_for_a_synthetic_upward_import(tmp_path: Path) -> None:
    # given: a copy of the layered apps' tree with one module importing upward
    for path in app_files():
        target = tmp_path / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    (tmp_path / "interventions" / "synthetic.py").write_text("def f():\n    from tracking import services\n")

    # when
    found = [v for v in check_tree(tmp_path) if v.path == "interventions/synthetic.py"]

    # then
    assert [str(v) for v in found] == [
        "interventions/synthetic.py:2: imports tracking.services (tracking is in a layer above: "
        "interventions may not import it)"
    ]


def test_it_catches_a_test_importing_a_test_module_or_a_conftest_in_every_form() -> None:
    # given
    source = (
        "from tests.tracking.test_reports import build_experiment\n"
        "from tests.notifications.conftest import campaign\n"
        "from tests.delivery import conftest as delivery_fixtures\n"
        "import tests.campaigns.test_admin\n"
        "from . import test_send\n"
        "def f():\n"
        "    from .conftest import providers\n"
    )

    # when
    found = check_test_imports(path="tests/notifications/test_synthetic.py", source=source)

    # then
    assert [(v.line, v.message) for v in found] == [
        (1, "imports tests.tracking.test_reports"),
        (2, "imports tests.notifications.conftest"),
        (3, "imports tests.delivery.conftest"),
        (4, "imports tests.campaigns.test_admin"),
        (5, "imports tests.notifications.test_send"),
        (7, "imports tests.notifications.conftest"),
    ]


def test_it_lets_tests_import_the_shared_support_modules() -> None:
    # given
    source = (
        "from tests import fixtures as f\n"
        "from tests.fixtures import build_experiment\n"
        "from tests.processes import database_url, free_port\n"
        "from tests.messaging.kafka_topics import isolate_topics\n"
        "from campaigns.services import campaign_create\n"
    )

    # when
    found = check_test_imports(path="tests/tracking/test_synthetic.py", source=source)

    # then
    assert found == []
