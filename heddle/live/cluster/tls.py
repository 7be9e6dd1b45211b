"""TLS for a cluster's client connections: passwords and payloads never cross the LAN in
the clear.

`heddle up` makes the cluster a self-signed certificate once (with the ``openssl`` binary,
as for the leaf sites) and nats-server requires TLS from every client. Clients do not check
host names (a laptop's LAN address changes); they pin the certificate itself: a joining
machine fetches it from the server, checks its fingerprint against the one the cluster
announced over mDNS (or, given only a URL, shows it to be compared with what `heddle up`
printed), and keeps it in its credentials.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["ServerIntro", "TlsError", "client_context", "fingerprint", "introduce", "make_certificate",
           "server_tls_config"]

CERT_DAYS = 3650
"""The cluster's certificate outlives its machines: it is pinned, not trusted through a CA."""
FETCH_TIMEOUT_S = 5.0
INFO_LIMIT = 64 * 1024
"""The longest first line (NATS INFO) a server may send before the TLS handshake."""


class TlsError(RuntimeError):
    """No certificate could be made or fetched, or it is not the one expected."""


def make_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """The cluster's certificate and key under ``directory`` (made once, key 0600)."""
    cert, key = directory / "server.pem", directory / "server.key"
    if cert.exists() and key.exists():
        return cert, key
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TlsError("the openssl command is needed to make the cluster's TLS certificate "
                       "(install it, or run `heddle up --no-tls` on a network you trust)")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    done = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(CERT_DAYS),
         "-subj", f"/CN=heddle {name}", "-keyout", str(key), "-out", str(cert)],
        capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise TlsError(f"openssl could not make the cluster's certificate: {done.stderr.strip()[-300:]}")
    os.chmod(key, 0o600)
    return cert, key


def server_tls_config(cert: Path, key: Path) -> str:
    """nats-server's ``tls`` block: every client connection is encrypted."""
    return "tls " + json.dumps({"cert_file": str(cert), "key_file": str(key), "timeout": 5}, indent=2) + "\n"


def fingerprint(pem: str) -> str:
    """The SHA-256 of a certificate, as ``ab12:cd34:...`` (16 groups)."""
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
    return ":".join(digest[i:i + 4] for i in range(0, 64, 4))


class _EofNoise(logging.Filter):
    """asyncio warns "returning true from eof_received() has no effect when using ssl" each
    time nats-py closes a TLS connection: noise on every command's terminal, so dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received()" not in record.getMessage()


_EOF_NOISE = _EofNoise()


def client_context(pem: str) -> ssl.SSLContext:
    """A client context that trusts exactly this certificate (pinned; no host name check)."""
    logging.getLogger("asyncio").addFilter(_EOF_NOISE)  # a set: adding it twice keeps one
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # the pin is the identity; the LAN address may change
    context.load_verify_locations(cadata=pem)
    return context


@dataclass(frozen=True, slots=True)
class ServerIntro:
    """What a nats-server says before anyone logs in."""

    auth_required: bool
    certificate: str | None  # PEM; None: the server does not use TLS


def introduce(url: str) -> ServerIntro:
    """Whether the nats-server at ``url`` wants a login, and the certificate it presents.

    NATS sends its INFO line in the clear, then the client starts the handshake; nothing is
    sent before the certificate is read, so a wrong server learns nothing.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 4222
    try:
        with socket.create_connection((host, port), timeout=FETCH_TIMEOUT_S) as raw:
            line = b""
            while not line.endswith(b"\r\n"):
                chunk = raw.recv(1)
                if not chunk or len(line) > INFO_LIMIT:
                    raise TlsError(f"{host}:{port} did not introduce itself as a nats-server")
                line += chunk
            if not line.startswith(b"INFO "):
                raise TlsError(f"{host}:{port} did not introduce itself as a nats-server")
            info = json.loads(line[5:])
            if not info.get("tls_required"):
                return ServerIntro(bool(info.get("auth_required")), None)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # read, then checked against the fingerprint
            with context.wrap_socket(raw) as wrapped:
                der = wrapped.getpeercert(binary_form=True)
    except (OSError, ValueError) as exc:
        raise TlsError(f"cannot reach {host}:{port} ({exc})") from None
    if der is None:
        raise TlsError(f"{host}:{port} presented no certificate")
    return ServerIntro(bool(info.get("auth_required")), ssl.DER_cert_to_PEM_cert(der))
