"""A job's TLS certificates, checked before it connects, and a failed handshake explained.

``distributed`` reports a certificate problem as ``TLS certificate does not match`` or
an ``SSLEOFError`` with a traceback, without saying which file is at fault. Here the
files of ``cluster.tls`` are checked first, with the standard library's :mod:`ssl`
(:func:`check_certificates`): each readable, the CA a certificate, the key that of the
certificate, the certificate signed by the CA and not expired. When the connection
still fails, :func:`explain_handshake` asks the scheduler in a handshake of its own
which side refused the other. Either way the error names the file, the CA and what to
do, and the command line reports it in one line (exit 2).
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
from typing import TYPE_CHECKING

from dasknmf.errors import DaskNMFError

if TYPE_CHECKING:
    from dasknmf.jobs.config import TLSConfig

__all__ = ["CertificateError", "check_certificates", "explain_handshake"]

#: What to do about certificates that do not belong together.
REMEDY = (
    "use the ca.pem, client.pem and client-key.pem written by the same "
    "deploy/tls/make-certs.sh run as the scheduler's certificate (the --tls-dir "
    "of start-cluster.sh)"
)

# OpenSSL's verification codes (X509_V_ERR_*) that say something about the files.
_NOT_YET_VALID, _EXPIRED = 9, 10
_OTHER_CA = {
    18: "is self-signed",
    19: "is signed by a CA outside the file",
    20: "is not signed by that CA",
    21: "is not signed by that CA",
}

_HANDSHAKE_TIMEOUT_S = 5.0


class CertificateError(DaskNMFError, ValueError):
    """A file of ``cluster.tls`` cannot serve to connect to the scheduler."""


def _name(key: str) -> str:
    """A ``cluster.tls`` key and the ``dasknmf submit`` option that sets it."""
    option = {"ca_file": "--tls-ca-file", "cert": "--tls-cert", "key": "--tls-key"}[key]
    return f"cluster.tls.{key} ({option})"


def check_certificates(tls: TLSConfig) -> None:
    """Raise :class:`CertificateError` unless ``tls``'s files can make a connection.

    Checked in turn: every file readable; the CA file a PEM certificate; the key that of
    the certificate (when ``tls.key`` is ``None``, the key must be in ``tls.cert``); the
    certificate signed by the CA and valid today.

    Examples
    --------
    >>> from dasknmf.jobs.config import TLSConfig
    >>> check_certificates(TLSConfig(ca_file="/no/ca.pem", cert="/no/client.pem"))
    Traceback (most recent call last):
    ...
    dasknmf.jobs.tls.CertificateError: cluster.tls.ca_file (--tls-ca-file) '/no/ca.pem' cannot be read: No such file or directory
    """  # noqa: E501
    files = {"ca_file": tls.ca_file, "cert": tls.cert, "key": tls.key}
    for key, path in files.items():
        if path is None:
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise CertificateError(
                f"{_name(key)} {path!r} cannot be read: {exc.strerror or exc}"
            ) from None
    try:
        ssl.create_default_context(cafile=tls.ca_file)
    except ssl.SSLError as exc:
        raise CertificateError(
            f"{_name('ca_file')} {tls.ca_file!r} is not a PEM certificate ({exc.reason or exc})"
        ) from None
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        server.load_cert_chain(tls.cert, tls.key, password=lambda: b"")
    except ssl.SSLError as exc:
        raise CertificateError(_key_problem(tls, exc)) from None
    _check_signed_and_valid(tls, server)


def _key_problem(tls: TLSConfig, exc: ssl.SSLError) -> str:
    reason = str(exc.reason or exc)
    if "KEY_VALUES_MISMATCH" in reason or "key values mismatch" in str(exc):
        return (
            f"{_name('key')} {tls.key!r} is not the key of {_name('cert')} {tls.cert!r}: "
            "give the -key.pem written with that certificate (make-certs.sh writes "
            "client.pem and client-key.pem)"
        )
    if tls.key is None:
        return (
            f"{_name('cert')} {tls.cert!r} holds no usable private key ({reason}): give the "
            f"key file as {_name('key')}"
        )
    return (
        f"{_name('key')} {tls.key!r} is not a readable, unencrypted PEM private key of "
        f"{_name('cert')} {tls.cert!r} ({reason}); give the -key.pem written with that "
        "certificate"
    )


def _check_signed_and_valid(tls: TLSConfig, server: ssl.SSLContext) -> None:
    """The certificate verified against the CA, as the scheduler will: a handshake in
    memory between ``server`` (holding the certificate) and a client trusting the CA."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.load_verify_locations(tls.ca_file)
    try:
        _handshake_in_memory(client, server)
    except ssl.SSLCertVerificationError as exc:
        code = exc.verify_code
        if code in (_EXPIRED, _NOT_YET_VALID):
            raise CertificateError(_validity_problem(tls, code)) from None
        if code in _OTHER_CA:
            raise CertificateError(
                f"{_name('cert')} {tls.cert!r} {_OTHER_CA[code]} in {_name('ca_file')} "
                f"{tls.ca_file!r}: the two come from different CAs (e.g. two make-certs.sh "
                f"runs); {REMEDY}"
            ) from None
        # Any other code (a certificate made for clients only, say) is for the
        # scheduler to judge.
    except ssl.SSLError:
        pass  # not about the files: the connection will tell


def _handshake_in_memory(client: ssl.SSLContext, server: ssl.SSLContext) -> None:
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_side=False)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {c: False, s: False}
    for _ in range(20):  # a TLS 1.3 handshake takes two round trips
        for side in (c, s):
            if not done[side]:
                try:
                    side.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return


def _validity_problem(tls: TLSConfig, code: int) -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    for key in ("cert", "ca_file"):
        path = getattr(tls, key)
        start, end = _validity(path)
        if end is not None and end < now:
            return (
                f"{_name(key)} {path!r} expired on {end:%Y-%m-%d %H:%M} UTC: make new "
                "certificates (deploy/tls/make-certs.sh --out DIR --force, --days for a "
                "longer validity) and restart the cluster with them"
            )
        if start is not None and start > now:
            return (
                f"{_name(key)} {path!r} is valid only from {start:%Y-%m-%d %H:%M} UTC: "
                "check this machine's clock"
            )
    what = "has expired" if code == _EXPIRED else "is not valid yet"
    return f"{_name('cert')} {tls.cert!r} or {_name('ca_file')} {tls.ca_file!r} {what}"


def _validity(path: str) -> tuple[datetime.datetime | None, datetime.datetime | None]:
    try:
        # The standard library's only reader of a certificate file's fields.
        fields = ssl._ssl._test_decode_cert(path)  # type: ignore[attr-defined]
        dates = (fields["notBefore"], fields["notAfter"])
    except Exception:
        return None, None
    return tuple(  # type: ignore[return-value]
        datetime.datetime.fromtimestamp(ssl.cert_time_to_seconds(d), datetime.timezone.utc)
        for d in dates
    )


def explain_handshake(address: str, tls: TLSConfig, exc: BaseException) -> CertificateError:
    """Why connecting to the scheduler at ``address`` with ``tls`` failed with ``exc``.

    A handshake of our own tells which side refused the other: this client the
    scheduler's certificate (not signed by ``tls.ca_file``), or the scheduler this
    client's (not signed by the CA it trusts).
    """
    host, _, port = address.removeprefix("tls://").rpartition(":")
    host = host.strip("[]")
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.load_verify_locations(tls.ca_file)
    client.load_cert_chain(tls.cert, tls.key, password=lambda: b"")
    refused = None
    try:
        with (
            socket.create_connection((host, int(port)), timeout=_HANDSHAKE_TIMEOUT_S) as raw,
            client.wrap_socket(raw) as conn,
        ):
            # In TLS 1.3 the server judges the client's certificate after the
            # handshake: its verdict arrives with the first read.
            conn.settimeout(1.0)
            with contextlib.suppress(TimeoutError):
                conn.recv(1)
    except ssl.SSLCertVerificationError as err:
        return CertificateError(
            f"the scheduler at {address} presents a certificate that is not signed by the "
            f"CA of {_name('ca_file')} {tls.ca_file!r} ({err.verify_message}): the "
            f"scheduler's certificates and yours come from different CAs (e.g. two "
            f"make-certs.sh runs); {REMEDY}"
        )
    except (ssl.SSLError, ConnectionError) as err:
        refused = err
    except OSError as err:
        return CertificateError(f"cannot connect to the scheduler at {address}: {err}")
    if refused is not None:
        return CertificateError(
            f"the scheduler at {address} refused {_name('cert')} {tls.cert!r}: it trusts "
            f"another CA than {_name('ca_file')} {tls.ca_file!r}, which signed it; {REMEDY}"
        )
    return CertificateError(f"the TLS connection to the scheduler at {address} failed: {exc}")
