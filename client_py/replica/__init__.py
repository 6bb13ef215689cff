"""The live local replica: a real directory kept in sync with a workspace."""

from client_py.conflicts import conflict_name
from client_py.replica.replica import Replica
from client_py.replica.summary import SyncSummary

__all__ = ["Replica", "SyncSummary", "conflict_name"]
