"""The mount on libfuse's low-level (inode) API: `binding` (ctypes over `fuse_lowlevel`),
`inodes` (kernel inode -> names, lookup counts), `adapter` (each request answered
through the mount's operations layer, `WsfsOperations`) and `invalidate` (remote mode: what
the change stream changed, dropped from the kernel by inode). `wsfs mount --api lowlevel`,
the default for local and remote mounts."""
