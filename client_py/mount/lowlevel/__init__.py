"""The mount on libfuse's low-level (inode) API: `binding` (ctypes over `fuse_lowlevel`),
`inodes` (kernel inode -> names, lookup counts) and `adapter` (each request answered
through the mount's operations layer, `WsfsOperations`). Selected by `wsfs mount --api lowlevel`."""
