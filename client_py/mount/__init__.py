"""FUSE mount of a wsfs workspace: `wsfs mount STORE.db MOUNTPOINT` (local) or
`wsfs mount URL WORKSPACE MOUNTPOINT` (remote, through a local cache store).

- `ops`: the FUSE operations over a `vfs.Workspace` (one lock, buffered writes)
- `handles`, `spool`: the open-file table and per-inode write buffers
- `attrs`: owners and atimes the store does not keep yet
- `runner`: libfuse options, daemon, unmount
- `cli`: the `mount` / `umount` subcommands
"""
