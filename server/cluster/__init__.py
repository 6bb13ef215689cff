"""Cluster mode (SPEC §6): several `wsfs serve` nodes over Redis, S3 and Litestream.

- `objectstore`: where the cluster's objects live (`S3Location`) and the
  conditional S3 operations the fence needs (`ObjectStore`).
- `lease`: Redis leases `owner:<workspace>` (`Leases`): who owns what now.
- `manifest`: the S3 manifest `{epoch, owner, prefix}` per workspace
  (`Manifests`): the fence that makes ownership safe.
- `ownership`: acquire, renew, check (`still_owner`) and release workspaces
  (`Ownership`).
- `replication`: the node's supervised Litestream daemon (`Litestream`):
  register, sync-and-wait, restore.
- `acks`: group-commit acknowledgements (`DurableAcks`): one sync and one
  fence check per round of writers.
- `control`: the HTTP/1.1 client of Litestream's control socket.
- `children`: child processes that never outlive the node.

docs/cluster.md explains the protocol and why it fences; `serve` wires it
into `wsfs serve --cluster`.
"""
