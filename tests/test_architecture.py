"""The layering rules and module sizes of docs/architecture.md, enforced.

Each rule here is one a reader of the code relies on: the store (`vfs`) knows
no HTTP and neither side; the wire (`vfs.wire`) does no I/O and knows no store
module; `server` and `client_py` never import each other. The contracts live
in `pyproject.toml` (`[tool.importlinter]`) and are checked by import-linter,
which follows every import statement, not just the top-level ones.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A module longer than this has more than one job (issue 11): split it.
MAX_LINES = {"vfs/wire": 450, "vfs": 600, "server": 600, "client_py": 600}


def _limit_for(relative: str) -> int:
    matches = [prefix for prefix in MAX_LINES if relative.startswith(prefix + "/")]
    return MAX_LINES[max(matches, key=len)]


def test_import_contracts_hold() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports is not None, "import-linter is a dev dependency: pip install -e '.[dev]'"
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", ""), result.stdout


@pytest.mark.parametrize("package", sorted(MAX_LINES))
def test_modules_stay_small(package: str) -> None:
    too_long = []
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        limit = _limit_for(relative)
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit:
            too_long.append(f"{relative}: {lines} lines (limit {limit})")
    assert not too_long, "split these modules by job:\n" + "\n".join(too_long)
