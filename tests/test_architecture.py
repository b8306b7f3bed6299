"""The layers of src/sftflow, read from its imports (function-level ones included).

A node is a subpackage (data, train, eval, model, review) or a top-level module (serve, web,
stats, ...). The stages read each other's files, not each other's code: data, train and eval
never import the HTTP layer or the review app, review does not import eval, the low floor
imports no stage, and no two nodes import each other, directly or round a loop.
"""

import ast
from collections import defaultdict
from pathlib import Path

import sftflow

SRC = Path(sftflow.__file__).parent
STAGES = ("data", "train", "eval")
HTTP_AND_REVIEW = {"serve", "web", "review", "terminal_chat"}
LOW_FLOOR = ("errors", "io", "stats", "ratings", "data_folder", "web", "progress", "formats", "task_metrics",
             "example")
STAGE_NODES = {"data", "train", "eval", "review", "serve", "cli", "runs", "terminal_chat", "project", "pipeline",
               "init_project"}


def _node(module: str) -> str | None:
    """'sftflow.data.prepare' -> 'data', 'sftflow.serve' -> 'serve'; the package itself -> None."""
    parts = module.split(".")
    if parts[0] != "sftflow" or len(parts) < 2:
        return None
    if (SRC / parts[1]).is_dir() or (SRC / f"{parts[1]}.py").exists():
        return parts[1]
    return None  # a name from sftflow/__init__.py (e.g. __version__)


def _module_of(path: Path) -> str:
    parts = ("sftflow", *path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    found = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            found |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:  # relative: resolve against this module's package
                package = module.split(".")[: len(module.split(".")) - n.level + (1 if is_package else 0)]
                base = ".".join(package + ([base] if base else []))
            found |= {f"{base}.{a.name}" for a in n.names} if base == "sftflow" else {base}
    return found


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        module = _module_of(path)
        source = _node(module)
        if source is None:
            continue
        for target in map(_node, _imported(ast.parse(path.read_text(encoding="utf-8")), module,
                                           path.name == "__init__.py")):
            if target is not None and target != source:
                graph[source].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A loop of imports as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in state and (loop := visit(m)):
                return loop
        path.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (loop := visit(n)):
            return loop
    return None


def test_the_graph_is_read_from_the_real_imports():
    """Known edges are found (module-level and function-level imports alike), so the checks
    below cannot pass on an empty graph."""
    graph = import_graph()
    assert {"serve", "terminal_chat", "review", "data", "train", "pipeline"} <= graph["cli"]
    assert {"data", "train", "eval"} <= graph["pipeline"]
    assert {"web", "runs", "stats"} <= graph["review"]
    assert "model" in graph["serve"] and "web" in graph["serve"]
    assert "data_folder" in graph["train"] and "stats" in graph["eval"]


def test_the_cycle_finder_finds_a_loop():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_between_packages():
    loop = find_cycle(import_graph())
    assert loop is None, " -> ".join(loop)


def test_stages_do_not_import_the_http_layer_or_review():
    graph = import_graph()
    found = {stage: sorted(graph[stage] & HTTP_AND_REVIEW) for stage in STAGES}
    assert found == {stage: [] for stage in STAGES}


def test_review_reads_eval_files_not_eval_code():
    assert "eval" not in import_graph()["review"]


def test_the_low_floor_imports_no_stage():
    graph = import_graph()
    found = {node: sorted(graph[node] & STAGE_NODES) for node in LOW_FLOOR}
    assert found == {node: [] for node in LOW_FLOOR}


ENV_WRITERS = {"setdefault", "update", "pop", "popitem", "clear", "__setitem__", "__delitem__"}
ENTRY = {("sftflow.cli.app", "main"), ("sftflow.__main__", None)}  # where the environment may be set


def _is_environ(node: ast.AST) -> bool:
    """`os.environ` (or `environ` imported from os)."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name)
            and node.value.id == "os") or (isinstance(node, ast.Name) and node.id == "environ")


def environment_writes(tree: ast.AST) -> list[tuple[int, str | None]]:
    """(line, enclosing top-level function or None) of every write to the process environment:
    `os.environ[k] = v`, `del os.environ[k]`, `os.environ.setdefault/update/pop/...`, `os.putenv/unsetenv`."""
    found = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = function
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) and function is None:
                inner = child.name
            targets = []
            if isinstance(child, ast.Assign | ast.Delete):
                targets = child.targets
            elif isinstance(child, ast.AugAssign | ast.AnnAssign):
                targets = [child.target]
            if any(isinstance(t, ast.Subscript) and _is_environ(t.value) for t in targets):
                found.append((child.lineno, function))
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                f = child.func
                if (f.attr in ENV_WRITERS and _is_environ(f.value)) or (
                        f.attr in ("putenv", "unsetenv") and isinstance(f.value, ast.Name) and f.value.id == "os"):
                    found.append((child.lineno, function))
            visit(child, inner)

    visit(tree, None)
    return found


def test_the_environment_write_finder_finds_each_kind():
    source = ("import os\nos.environ['A'] = '1'\ndef f():\n    os.environ.setdefault('B', '1')\n"
              "    os.environ.update(C='1')\n    os.environ.pop('D', None)\n    os.putenv('E', '1')\n"
              "    del os.environ['F']\n    x = os.environ.get('G')\n    env = {**os.environ}\n")
    assert environment_writes(ast.parse(source)) == [(2, None), (4, "f"), (5, "f"), (6, "f"), (7, "f"), (8, "f")]


def test_no_environment_write_outside_the_cli_entry():
    """Settings travel as arguments; the environment is set at the entry point only (cli.main), so no
    library call changes what the rest of the process (or a caller's code) sees."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        module = _module_of(path)
        for line, function in environment_writes(ast.parse(path.read_text(encoding="utf-8"))):
            if (module, function) not in ENTRY and (module, None) not in ENTRY:
                found.append(f"{path.relative_to(SRC.parent)}:{line} (in {function or 'the module'})")
    assert found == [], "os.environ written outside cli.main: " + ", ".join(found)


def test_no_sftflow_values_ride_on_library_objects():
    """Facts about a tokenizer's template live in model/chat_template.py's ChatTemplate, passed as an
    argument; none is stored as an extra attribute (`tok._sftflow_*`, `tok.sftflow_*`) for others to read."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = n.targets if isinstance(n, ast.Assign) else [n.target] if isinstance(n, ast.AugAssign | ast.AnnAssign) else []
            for t in targets:
                if isinstance(t, ast.Attribute) and t.attr.lstrip("_").startswith("sftflow"):
                    found.append(f"{path.relative_to(SRC.parent)}:{n.lineno} .{t.attr}")
            if (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "setattr" and len(n.args) > 1
                    and isinstance(n.args[1], ast.Constant) and str(n.args[1].value).lstrip("_").startswith("sftflow")):
                found.append(f"{path.relative_to(SRC.parent)}:{n.lineno} setattr {n.args[1].value}")
    assert found == []


MAX_MODULE_LINES = 500


def test_no_module_is_over_500_lines():
    """One module per concept: a module past 500 lines is split along its concepts (issue 30)."""
    long = {str(path.relative_to(SRC.parent)): n for path in sorted(SRC.rglob("*.py"))
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines: {long}"
