"""`python -m client_py.mount mount|umount ...`: the daemon entry `--background` starts."""

import sys

from client_py.mount.cli import main

sys.exit(main())
