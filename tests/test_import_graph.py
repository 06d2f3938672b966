"""writ_async's import graph, read from the source: no cycle, nothing imports upward.

The graph is built with ``ast`` from every module of ``writ_async`` and of the shipped
``domains``: ``import x``, ``from x import y`` (``y`` counts as the module ``x.y`` when
it is one), relative imports, and string imports (``import_module("x")`` and
``__import__("x")``; where the name is not a literal, as in a registry that builds its
loaders from a table, every string in that module that names one of ours counts).
Every import counts wherever it stands: inside a function (a deferred import is still a
dependency, and one that exists to dodge a cycle is still a cycle) and under
``if TYPE_CHECKING:`` (an annotation is a dependency of the design, if not of the run).

``LAYERS`` is the layout, bottom first: a module may import its own layer and those
below. The domains are a layer of their own above the environment kit they build on,
and only the commands may import them (the engine is given a ``Domain``, never looks one
up). What today's code does against that is in ``ALLOWED``, each with its reason; an
entry no longer needed fails too, so that the list only shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("writ_async", "domains")

# Bottom first. A module's layer is the first whose patterns match its name.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", (  # no engine concept: errors, logging, seeds, records, configuration
        "writ_async", "writ_async.errors", "writ_async.logs", "writ_async.seeds",
        "writ_async.scopes", "writ_async.config",
        "writ_async.environment.tau2", "writ_async.environment.tau2.*",
        "writ_async.participants.phrasebank", "writ_async.conversation.messages",
        "writ_async.conversation.records",
        "writ_async.llm.protocol",  # the wire format (as messages is ours): no I/O
        "writ_async.mock.config",  # the mock's settings, plain structs (config.py holds them)
        # the subpackages' own modules only say what is in them
        "writ_async.conversation", "writ_async.environment", "writ_async.engine",
        "writ_async.engine.replay", "writ_async.participants",
        "writ_async.participants.behaviours", "writ_async.participants.scripted",
        "writ_async.grading", "writ_async.export",
        "writ_async.llm", "writ_async.mock", "writ_async.synthesis", "writ_async.cluster",
        "writ_async.loadtest")),
    ("llm", (  # endpoints: protocol, client, pool, limits, retry, the mock server
        "writ_async.mock.scripted_policy!",  # (not here: see "conversation")
        "writ_async.llm.*", "writ_async.mock.*")),
    ("environment", (  # a domain's kit: overlay, tools, tasks, Domain, the draft protocols
        "writ_async.environment.*", "writ_async.conversation.task",
        "writ_async.participants.behaviours.*", "writ_async.participants.prompts",
        "writ_async.synthesis.drafts", "writ_async.synthesis.readheavy",
        "writ_async.synthesis.wording")),
    ("domains", ("domains", "domains.*")),
    ("synthesis", ("writ_async.synthesis.*",)),
    ("conversation", (  # one episode: the sans-IO episode, participants, grading, journal
        "writ_async.conversation.episode", "writ_async.participants.base",
        "writ_async.participants.llm", "writ_async.engine.drive",
        "writ_async.participants.scripted.*",
        "writ_async.engine.journal", "writ_async.grading.grade", "writ_async.grading.judge",
        "writ_async.grading.gold", "writ_async.grading.matching", "writ_async.grading.evidence",
        "writ_async.mock.scripted_policy")),
    ("engine", (  # many episodes: runs, run directories, outputs, replay
        "writ_async.engine.*", "writ_async.grading.results", "writ_async.export.*")),
    ("services", (  # built on the engine: a Ray cluster, load tests
        "writ_async.loadtest.cli!",  # (not here: see "commands")
        "writ_async.cluster.*", "writ_async.loadtest.*")),
    ("commands", ("writ_async.cli", "writ_async.__main__", "writ_async.commands",
                  "writ_async.commands.*", "writ_async.loadtest.cli")),
)
COMMANDS = "commands"
DOMAINS = "domains"

# (importer, imported): why it is allowed today, and what removes it.
ALLOWED: dict[tuple[str, str], str] = {
    # Annotation only (ParticipantError.reason is an episode.Termination): goes when
    # Termination moves below errors.py, out of episode.py (being reshaped meanwhile).
    ("writ_async.errors", "writ_async.conversation.episode"):
        "cycle errors <-> episode, TYPE_CHECKING only",
    ("writ_async.config", "writ_async.participants.behaviours.scenarios"):
        "behaviour names checked in config",
}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = modules()


def ours(name: str) -> str | None:
    """The module of ours that importing ``name`` runs (a name inside a module: that
    module); None for anything else."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imported_names(module: str, path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    dynamic = False
    for node in ast.walk(tree):  # every node: function bodies and TYPE_CHECKING too
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            yield source
            yield from (f"{source}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else (
                func.id if isinstance(func, ast.Name) else "")
            if called in ("import_module", "__import__") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    yield first.value
                elif isinstance(first, ast.JoinedStr) and first.values and isinstance(
                        first.values[0], ast.Constant):  # f"domains.{name}": its package
                    yield str(first.values[0].value).rstrip(".")
                else:
                    dynamic = True
    if dynamic:  # the names come from elsewhere in the module: take every one of ours
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and node.value.split(".")[0] in PACKAGES and node.value in MODULES):
                yield node.value


def build_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets = {ours(name) for name in imported_names(module, path)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


GRAPH = build_graph()


def layer_of(module: str) -> tuple[int, str]:
    for rank, (name, patterns) in enumerate(LAYERS):
        if f"{module}!" in patterns:
            continue  # listed as belonging to another layer
        if any(fnmatchcase(module, p) for p in patterns if not p.endswith("!")):
            return rank, name
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_every_kind_of_import() -> None:
    # A plain import, a deferred one inside a function (cli's commands), a
    # TYPE_CHECKING one, and the registry's string imports.
    assert "writ_async.engine.scheduler" in GRAPH["writ_async.engine.simulate"]
    # imported inside a command
    assert "writ_async.engine.replay.verify" in GRAPH["writ_async.commands.replay"]
    assert "writ_async.conversation.episode" in GRAPH["writ_async.errors"]  # TYPE_CHECKING
    assert {"domains.airline", "domains.retail"} <= GRAPH["domains"]  # import_module
    assert len(GRAPH) == len(MODULES) > 50


def test_every_module_has_a_layer() -> None:
    unplaced = []
    for module in MODULES:
        try:
            layer_of(module)
        except AssertionError:
            unplaced.append(module)
    assert unplaced == []


def test_no_cycle_between_modules() -> None:
    allowed = {edge for edge, why in ALLOWED.items() if why.startswith("cycle")}
    graph = {m: {t for t in ts if (m, t) not in allowed} for m, ts in GRAPH.items()}
    assert cycles(graph) == []


def test_nothing_imports_upward_and_only_commands_import_the_domains() -> None:
    wrong = []
    for module, targets in sorted(GRAPH.items()):
        rank, name = layer_of(module)
        for target in sorted(targets):
            target_rank, target_name = layer_of(target)
            upward = target_rank > rank
            into_domains = target_name == DOMAINS and name not in (DOMAINS, COMMANDS)
            if (upward or into_domains) and (module, target) not in ALLOWED:
                wrong.append(f"{module} ({name}) imports {target} ({target_name})")
    assert wrong == []


@pytest.mark.parametrize(("edge", "why"), sorted(ALLOWED.items()))
def test_every_allowed_import_is_still_there(edge: tuple[str, str], why: str) -> None:
    importer, imported = edge
    assert imported in GRAPH.get(importer, set()), (
        f"{importer} no longer imports {imported}: remove it from ALLOWED ({why})")
