"""The import contract: dependencies point from the parts toward the core, never back.

Every `import` in prognos/ counts, at the top of a module or inside a function, so a lazy import
cannot hide a dependency. A handler named by string ("module:function", prognos.commands.
lazy_command) is not an import; the command table and the source registry use that on purpose.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "prognos"
PARTS = ("ops", "edge", "cloud", "desk", "hil", "models", "dashboard", "sim")

# part -> the parts it may not import ("core" is prognos/*.py itself)
FORBIDDEN: dict[str, frozenset[str]] = {
    "core": frozenset(PARTS),
    "edge": frozenset({"cloud", "desk", "dashboard", "models", "hil", "ops", "sim"}),
    "cloud": frozenset({"edge", "desk", "dashboard", "hil", "sim"}),
    "desk": frozenset({"edge", "dashboard", "hil", "models", "sim"}),
    "sim": frozenset({"dashboard", "hil", "models", "ops"}),
}


def part_of(module: str) -> str | None:
    """The part a dotted module name belongs to, or None outside prognos."""
    names = module.split(".")
    if names[0] != "prognos":
        return None
    return names[1] if len(names) > 1 and names[1] in PARTS else "core"


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    names = list(relative.parts)
    if names[-1] == "__init__":
        names.pop()
    return ".".join(names)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) for every import in `source`, relative imports resolved."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            # `from prognos import edge` imports the part itself
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names if base == "prognos")
    return found


# Outside ops, only these find the local stack through it (until a cloud config replaces stack.json).
OPS_USERS = ("prognos.dashboard.data", "prognos.dashboard.desk_data")


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    part = part_of(module)
    banned = FORBIDDEN.get(part or "", frozenset())
    if part not in ("ops", "core") and not (module.endswith(".cli") or module in OPS_USERS):
        banned = banned | {"ops"}
    problems = []
    for line, target in imported_modules(source, module, is_package):
        target_part = part_of(target)
        if target_part in banned:
            problems.append(f"{module}:{line} ({part}) imports {target} ({target_part})")
    return problems


# Pure modules: data in, data out. They import no adapter library and no storage client, so they
# can be tested and reused without a server (STYLE.md).
PURE_MODULES = (
    "prognos.record",
    "prognos.receipt",
    "prognos.topics",
    "prognos.status",
    "prognos.link",
    "prognos.edge.buffers",
    "prognos.edge.features",
    "prognos.edge.rules",
    "prognos.edge.trend",
    "prognos.cloud.analytics.common",
    "prognos.cloud.analytics.alerts",
    "prognos.cloud.analytics.cohorts",
    "prognos.cloud.analytics.service",
    "prognos.cloud.analytics.analyse",
    "prognos.cloud.analytics.fleet_health",
    "prognos.cloud.dealers.kinds",
    "prognos.cloud.dealers.kpis",
    "prognos.cloud.dealers.reassign",
    "prognos.cloud.parts.forecast",
    "prognos.cloud.parts.tables",
    "prognos.cloud.parts.plan",
    "prognos.cloud.parts.history",
    "prognos.cloud.parts.master",
    "prognos.cloud.reports.alerting",
    "prognos.cloud.reports.report",
    "prognos.cloud.reports.render",
    "prognos.cloud.reports.store",
    "prognos.cloud.storage.measurement",
    "prognos.cloud.storage.schema",
    "prognos.cloud.storage.encode",
)
ADAPTERS = (
    "paho",
    "requests",
    "sqlite3",
    "socket",
    "can",
    "serial",
    "streamlit",
    "urllib",
    "http",
    "subprocess",
)
ADAPTER_MODULES = ("prognos.cloud.storage.client", "prognos.cloud.storage.writer", "prognos.ops")


def impure_imports(source: str, module: str) -> list[str]:
    found = []
    for line, target in imported_modules(source, module, is_package=False):
        if target.split(".")[0] in ADAPTERS or target.startswith(ADAPTER_MODULES):
            found.append(f"{module}:{line} imports {target}")
    return found


def test_pure_modules_import_no_adapter() -> None:
    problems: list[str] = []
    for module in PURE_MODULES:
        path = PACKAGE.parent.joinpath(*module.split(".")).with_suffix(".py")
        assert path.is_file(), f"{module} is listed as pure but {path} does not exist"
        problems += impure_imports(path.read_text(encoding="utf-8"), module)
    assert not problems, "pure modules importing adapters:\n" + "\n".join(problems)


def test_the_purity_check_catches_an_adapter_import() -> None:
    assert impure_imports("import requests", "prognos.cloud.parts.plan")
    assert impure_imports("def f():\n    from prognos.cloud.storage.client import InfluxClient\n", "x.y")
    assert impure_imports("import numpy as np\nimport pandas as pd", "prognos.cloud.parts.plan") == []


def test_no_part_imports_against_the_direction_of_the_layers() -> None:
    problems: list[str] = []
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 50, f"found only {len(modules)} modules under {PACKAGE}"
    for path in modules:
        problems += violations(
            path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py"
        )
    assert not problems, "imports against the layers:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "module, source",
    [
        ("prognos.record", "from prognos.edge.spool import Spool"),
        ("prognos.config", "def f():\n    import prognos.cloud.ingest.worker\n"),
        ("prognos.topics", "from prognos import hil"),
        ("prognos.edge.gateway", "from prognos.cloud.storage import writer"),
        ("prognos.edge.sources.uart", "from ...models import train"),
        ("prognos.cloud.ingest.worker", "from prognos.dashboard import data"),
        ("prognos.cloud.analytics", "from ..hil.bench import run_scenario"),
        ("prognos.sim.fleet", "from prognos.hil.scenario import Scenario"),
        ("prognos.cloud.ingest.worker", "from prognos.ops.state import load_stack"),
        ("prognos.hil.bench", "from prognos.ops.provision import fleet_logins"),
    ],
)
def test_the_check_catches_each_kind_of_forbidden_import(module: str, source: str) -> None:
    assert violations(source, module)


@pytest.mark.parametrize(
    "module, source",
    [
        ("prognos.edge.gateway", "from prognos.record import DiagnosticRecord\nfrom . import spool"),
        ("prognos.hil.bench", "from prognos.edge.gateway import Gateway"),
        ("prognos.models.train", "from prognos.edge.features import window_features"),
        ("prognos.models.dataset", "from prognos.sim.fleet import make_fleet"),
        ("prognos.cloud.cli", "from prognos.ops.state import load_stack"),
        ("prognos.dashboard.data", "from prognos.ops.state import load_stack"),
    ],
)
def test_imports_along_the_layers_pass(module: str, source: str) -> None:
    assert violations(source, module) == []


def test_prognos_help_loads_no_part() -> None:
    probe = (
        "import sys\n"
        "from prognos.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('prognos'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = result.stdout.split()[-1:] and result.stdout.strip().splitlines()[-1].split()
    assert "prognos.cli" in loaded
    assert [m for m in loaded if part_of(m) != "core"] == []
    assert "usage: prognos" in result.stdout
