"""Shared test set-up: hypothesis profiles and the live-server fixtures.

The suite runs against real components only: SQLite files in tmp_path, a
real uvicorn server on a loopback port, real WebSocket clients.
"""

import hypothesis_profiles  # noqa: F401  (registers and loads the hypothesis profile)

# Fixtures shared across modules: `live_server` (in-process server),
# `server`/`ws` (a restartable server process and a WS client on it),
# `browser`/`demo_server` (chromium and `wsfs serve` for the demo), and the cluster's
# engines (`redis_server`, `seaweed`, `s3_location`, `litestream`: real, on loopback).
pytest_plugins = ["server_fixtures", "client_fixtures", "web_fixtures", "cluster_fixtures", "cli_fixtures"]
pytest_plugins += ["cluster_hub_fixtures"]  # RedisHub and SharedTokens on two nodes (tests/test_cluster_hub.py)
