"""The client's `wsfs` subcommands, one module per job.

| module | commands |
| --- | --- |
| `parser.py` | every option and its help text (`register(subparsers)`, called by `wsfs/cli.py`) |
| `common.py` | running a command, exit codes, the connection, output helpers |
| `files.py` | ls, tree, stat, cat, rm, mv, cp, ln, mkdir, chmod |
| `transfer.py` | put, get (files and, with -r, directories) |
| `queries.py` | find, grep, du, history, restore, watch |
| `sync.py` | sync and its display |
| `admin.py` | workspaces; the remote half of `token` |
| `conflicts.py` | conflicts list, diff, resolve |

Exit codes (docs/client.md): 0 ok, 1 error, 2 usage, 3 not found,
4 permission, 5 conflict, 6 server unreachable, 130 Ctrl-C, 141 the
reader of stdout went away.
"""

from client_py.cli.parser import register

__all__ = ["register"]
