"""Helpers of the target tests: a real S3 API server (moto) on 127.0.0.1, and a failing proxy.

moto's ``ThreadedMotoServer`` speaks the S3 protocol over HTTP; obstore talks to
it as to any endpoint. Its state lives in this process, so a server stopped
and started again on the same port still holds the buckets and objects.
:class:`FailingProxy` stands between obstore and moto to fail chosen requests.
"""

from __future__ import annotations

import http.client
import http.server
import secrets
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from odeion_archive.targets import TargetSpec

ACCESS_KEY = "odeion-test-key"
SECRET_KEY = "s3cr3t-" + "x" * 24


class S3Server:
    """A moto S3 server on 127.0.0.1 that tests may stop and start again."""

    def __init__(self) -> None:
        self._server: ThreadedMotoServer | None = None
        self.port = 0

    def start(self) -> None:
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        server.start()
        self.port = server.get_host_and_port()[1]
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def create_bucket(self) -> str:
        name = f"odeion-{secrets.token_hex(6)}"
        boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        ).create_bucket(Bucket=name)
        return name


def s3_spec(
    endpoint: str, bucket: str, credentials: Path, name: str = "offsite", **options: Any
) -> TargetSpec:
    """An s3 target on the test server, failing fast where a real one would wait longer."""
    settings: dict[str, Any] = {"retries": 1, "timeout": 10, "part_size_mib": 5}
    settings.update(options)
    return TargetSpec.s3(
        name,
        bucket=bucket,
        endpoint=endpoint,
        prefix="server-1",
        path_style=True,
        allow_http=True,
        credentials_file=credentials,
        **settings,
    )


class FailingProxy:
    """An HTTP proxy on 127.0.0.1 in front of the S3 server that fails chosen requests.

    ``fail`` decides, for each request (method and path with query), whether
    to answer it with a 500 S3 error instead of passing it on; ``failed``
    counts the requests it failed.
    """

    def __init__(self, upstream: str, fail: Callable[[str, str], bool]) -> None:
        self.failed = 0
        self.passed = 0
        proxy = self
        host, port = upstream.removeprefix("http://").split(":")

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if fail(self.command, self.path):
                    proxy.failed += 1
                    error = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
                    self.send_response(500)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                proxy.passed += 1
                connection = http.client.HTTPConnection(host, int(port), timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                connection.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815 - http.server's names

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
