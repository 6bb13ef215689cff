"""Run a module's mount tests on each of libfuse's APIs the mount has (`wsfs mount --api`).

Import `mount_api` into a test module (`from mount_api import mount_api  # noqa: F401`):
an autouse, module-scoped fixture parametrized over `path` and `lowlevel` that sets
$WSFS_MOUNT_API, which every daemon the module starts (MountProcess, `wsfs mount
--background`) takes as its `--api` default. A module-scoped fixture that mounts must
take `mount_api` as an argument, so it mounts again for each API.
"""

from __future__ import annotations

import pytest

from pathlib import Path

from client_py.mount.runner import APIS, MountProcess


@pytest.fixture(scope="module", params=APIS, autouse=True)
def mount_api(request) -> str:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WSFS_MOUNT_API", request.param)
        yield request.param


def mount_on(tmp_path: Path, store: Path, api: str) -> MountProcess:
    """`store` mounted at `tmp_path/mnt` on libfuse's `api` (a context manager), logging to `mount.log`."""
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir(exist_ok=True)
    return MountProcess([str(store)], str(mountpoint), log_file=str(tmp_path / "mount.log"), extra=["--api", api])
