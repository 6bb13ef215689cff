"""Shared test set-up: hypothesis profiles and the live-server fixtures.

The suite runs against real components only: SQLite files in tmp_path, a
real uvicorn server on a loopback port, real WebSocket clients.
"""

import hypothesis_profiles  # noqa: F401  (registers and loads the hypothesis profile)
