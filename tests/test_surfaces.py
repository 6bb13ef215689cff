"""The workspace protocols of `vfs.surface`, enforced by the suite.

The store, the async client, the remote mount's backend and the FUSE
operations each promise a surface declared once in `vfs.surface`;
`tests/typecheck_surfaces.py` assigns each implementation to its protocol.
Only mypy can judge those assignments, so this test runs it: a signature
that drifts from its declaration fails here, not in a user's mount.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "mypy", "--follow-imports=silent", "tests/typecheck_surfaces.py"]


def test_implementations_follow_the_declared_surfaces() -> None:
    result = subprocess.run(COMMAND, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
