"""FUSE mount of a wsfs workspace: `wsfs mount STORE.db MOUNTPOINT` (local) or
`wsfs mount URL WORKSPACE MOUNTPOINT` (remote, through a local cache store).
See docs/mount.md.

- `ops`: the FUSE operations over a `vfs.surface.MountBackend`: a local store or the remote backend (one lock)
- `handles`, `spool`: the open-file table and per-inode write buffers
- `group`: group commit of metadata bursts in one store transaction
- `notify`: kernel cache invalidation for the other names of hard-linked files
- `remote_backend`: remote mode, the backend serving a remote workspace (chunk cache, pushes with base)
- `index`: remote mode's in-memory metadata, kept live by the change stream
- `loop_thread`: remote mode's event loop in a helper thread, for FUSE's synchronous calls
- `attrs`: owners and exact times in remote mode (the wire protocol carries none)
- `runner`: libfuse options, the daemon, unmount, `MountProcess`
- `cli`: the `mount` / `umount` subcommands
"""
