"""The live local replica: a real directory kept in sync with a workspace."""

from client_py.replica.replica import Replica, SyncSummary, conflict_name

__all__ = ["Replica", "SyncSummary", "conflict_name"]
