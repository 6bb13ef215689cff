"""Cluster settings and the manifest format: bad input gets a clear error, good input round-trips."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from server.cluster.manifest import Manifest, ManifestError
from server.cluster.objectstore import S3Location


def test_s3_location_parses_bucket_and_prefix() -> None:
    loc = S3Location.parse("s3://my-bucket/some/root/", endpoint="http://127.0.0.1:8333",
                           access_key="k", secret_key="s", region="eu-west-1")
    assert (loc.bucket, loc.prefix, loc.endpoint, loc.region) == ("my-bucket", "some/root", "http://127.0.0.1:8333",
                                                                  "eu-west-1")
    assert loc.key("ws", "a", "manifest.json") == "some/root/ws/a/manifest.json"
    assert S3Location.parse("s3://b", access_key="k", secret_key="s").key("ws", "x") == "ws/x"


@pytest.mark.parametrize("url", ["http://bucket/p", "s3:///p", "bucket/p", "s3://b/p?x=1", "s3://b/p#f", ""])
def test_s3_location_refuses_what_is_not_s3_bucket_prefix(url: str) -> None:
    with pytest.raises(ValueError, match="s3://BUCKET/PREFIX"):
        S3Location.parse(url)


def test_s3_location_refuses_an_endpoint_that_is_not_http() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        S3Location.parse("s3://b/p", endpoint="127.0.0.1:8333")


def test_credentials_default_to_the_aws_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
    loc = S3Location.parse("s3://b/p")
    assert (loc.access_key, loc.secret_key) == ("from-env", "secret-from-env")


def test_replica_url_carries_the_endpoint_for_litestream() -> None:
    loc = S3Location("b", "root", endpoint="http://127.0.0.1:8333/", region="us-east-1")
    url = urlsplit(loc.url("root/ws/a/e3"))
    assert (url.scheme, url.netloc, url.path) == ("s3", "b", "/root/ws/a/e3")
    query = parse_qs(url.query)
    assert query == {"endpoint": ["http://127.0.0.1:8333/"], "region": ["us-east-1"], "force-path-style": ["true"]}
    assert "endpoint" not in S3Location("b").url("k")  # real AWS: no endpoint, virtual-host style


def test_litestream_environment_drops_aws_ca_bundle_and_carries_credentials() -> None:
    loc = S3Location("b", endpoint="http://127.0.0.1:1", access_key="ak", secret_key="sk", region="r1")
    env = loc.child_env({"AWS_CA_BUNDLE": "/etc/ssl/x.pem", "PATH": "/bin", "AWS_ACCESS_KEY_ID": "other"})
    assert "AWS_CA_BUNDLE" not in env
    assert env["PATH"] == "/bin"
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_REGION"]) == ("ak", "sk", "r1")


def test_manifest_round_trips() -> None:
    manifest = Manifest(7, "node-a", "root/ws/a/e7")
    assert Manifest.from_bytes(manifest.to_bytes()) == manifest
    marker = Manifest(7, "node-a", "root/ws/a/e7", since=5, deleted=True)
    assert Manifest.from_bytes(marker.to_bytes()) == marker


def test_a_first_pass_manifest_reads_as_one_life_not_deleted() -> None:
    """Manifests written before `since` and `deleted` existed: their whole history is one life."""
    old = Manifest.from_bytes(b'{"epoch": 3, "owner": "a", "prefix": "p/e3"}')
    assert (old.since, old.deleted) == (1, False)


@pytest.mark.parametrize("window", ["-0.1", "6", "nan"])
def test_the_fence_window_is_checked_at_start(monkeypatch: pytest.MonkeyPatch, window: str) -> None:
    from server.cluster.node import ClusterConfig

    monkeypatch.setenv("WSFS_CLUSTER_FENCE_WINDOW", window)
    with pytest.raises(ValueError, match="fence window"):
        ClusterConfig("redis://127.0.0.1:1/0", "s3://b/p", "http://127.0.0.1:1")


@pytest.mark.parametrize(("variable", "value", "named"), [
    ("WSFS_CLUSTER_L1_INTERVAL", "0.5", "L1 interval"), ("WSFS_CLUSTER_L1_INTERVAL", "-1", "L1 interval"),
    ("WSFS_CLUSTER_ROUNDS_IN_FLIGHT", "3", "rounds in flight"), ("WSFS_CLUSTER_ROUNDS_IN_FLIGHT", "0", "rounds in flight")])
def test_litestream_and_round_settings_are_checked_at_start(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                            value: str, named: str) -> None:
    from server.cluster.node import ClusterConfig

    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=named):
        ClusterConfig("redis://127.0.0.1:1/0", "s3://b/p", "http://127.0.0.1:1")


def test_litestream_compaction_follows_the_l1_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.cluster.node import ClusterConfig
    from server.cluster.replication import compaction_settings

    monkeypatch.setenv("WSFS_CLUSTER_L1_INTERVAL", "30")
    config = ClusterConfig("redis://127.0.0.1:1/0", "s3://b/p", "http://127.0.0.1:1")
    assert config.l1_interval == 30 and config.rounds_in_flight == 1
    settings = compaction_settings(config.l1_interval)
    assert "l0-retention: 15s" in settings and "- interval: 30s" in settings


def test_serve_refuses_a_fence_window_out_of_range(tmp_path) -> None:
    """`wsfs serve --fence-window` out of range: the command fails at once, naming the setting,
    before it touches Redis or S3 (both unreachable here)."""
    import subprocess
    import sys

    base = [sys.executable, "-m", "wsfs", "serve", "--data", str(tmp_path), "--port", "0",
            "--cluster", "redis://127.0.0.1:1/0", "--replicate", "s3://b/p", "--s3-endpoint", "http://127.0.0.1:1",
            "--advertise", "http://127.0.0.1:1"]
    bad = subprocess.run([*base, "--fence-window", "9"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "fence window must be between 0 and 5 s, got 9.0" in bad.stderr


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", b'{"epoch": 0, "owner": "a", "prefix": "p"}', b'{"epoch": "1", "owner": "a", "prefix": "p"}',
    b'{"epoch": 1, "prefix": "p"}', b'{"epoch": 1, "owner": "a", "prefix": 5}', b'{"epoch": true, "owner": "a", "prefix": "p"}',
    b'{"epoch": 2, "owner": "a", "prefix": "p", "since": 3}', b'{"epoch": 2, "owner": "a", "prefix": "p", "since": 0}',
    b'{"epoch": 2, "owner": "a", "prefix": "p", "deleted": "yes"}',
])
def test_a_damaged_manifest_is_a_clear_error(body: bytes) -> None:
    with pytest.raises(ManifestError, match="manifest"):
        Manifest.from_bytes(body)


def test_serve_flags_reach_the_cluster_settings(tmp_path) -> None:
    """`--cluster-chunks`, `--chunk-grace`, `--chunk-cache-mb` become the node's settings; absent, the defaults."""
    from server.cli import _cluster_setup
    from wsfs.cli import build_parser

    base = ["serve", "--data", str(tmp_path), "--cluster", "redis://127.0.0.1:1/0", "--replicate", "s3://b/p",
            "--s3-endpoint", "http://127.0.0.1:1", "--advertise", "http://127.0.0.1:1"]
    given = _cluster_setup(build_parser().parse_args(
        [*base, "--cluster-chunks", "sqlite", "--chunk-grace", "5", "--chunk-cache-mb", "2"]), 1).config
    assert (given.chunks, given.chunk_grace, given.chunk_cache_bytes) == ("sqlite", 5.0, 2 * 1024 * 1024)
    default = _cluster_setup(build_parser().parse_args(base), 1).config
    assert default.chunks == "objects" and default.chunk_grace > 5 and default.chunk_cache_bytes > 2 * 1024 * 1024


def test_serve_refuses_a_negative_chunk_grace(tmp_path) -> None:
    import subprocess
    import sys

    bad = subprocess.run([sys.executable, "-m", "wsfs", "serve", "--data", str(tmp_path), "--port", "0",
                          "--cluster", "redis://127.0.0.1:1/0", "--replicate", "s3://b/p",
                          "--s3-endpoint", "http://127.0.0.1:1", "--advertise", "http://127.0.0.1:1",
                          "--chunk-grace", "-1"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "chunk grace" in bad.stderr
