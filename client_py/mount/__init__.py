"""FUSE mount of a wsfs workspace: `wsfs mount STORE.db MOUNTPOINT` (local) or
`wsfs mount URL WORKSPACE MOUNTPOINT` (remote, through a local cache store).
See docs/mount.md.

- `ops`: the FUSE operations over a `vfs.Workspace` or the remote backend (one lock)
- `handles`, `spool`: the open-file table and per-inode write buffers
- `group`: group commit of metadata bursts in one store transaction
- `notify`: kernel cache invalidation for the other names of hard-linked files
- `remote`: remote mode (index from the change stream, chunk cache, pushes with base)
- `attrs`: owners and exact times in remote mode (the wire protocol carries none)
- `runner`: libfuse options, the daemon, unmount, `MountProcess`
- `cli`: the `mount` / `umount` subcommands
"""
