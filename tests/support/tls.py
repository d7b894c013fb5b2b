"""A throwaway certificate authority for secured brokers in tests (``trustme``).

:class:`Certificates` writes, into one folder, what a secured Kafka and its clients need:
the CA (``ca.pem``), the broker's PEM keystore (its PKCS#8 key and certificate chain, the
form Apache Kafka's ``ssl.keystore.type=PEM`` reads), a client certificate and key for
mutual TLS, and a second CA that signed nothing (the "untrusted" case).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from services.brokers.apache_kafka import ApacheKafka, ClientListener
from tests.support.broker import own_broker_kind


def _pkcs8(key_pem: bytes) -> bytes:
    """trustme writes traditional OpenSSL keys; Kafka's PEM keystore wants PKCS#8."""
    key = load_pem_private_key(key_pem, password=None)
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


@dataclass(frozen=True)
class Certificates:
    ca_file: Path
    broker_keystore: Path
    client_cert_file: Path
    client_key_file: Path
    other_ca_file: Path

    @classmethod
    def create(
        cls, directory: Path, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
    ) -> Certificates:
        directory.mkdir(parents=True, exist_ok=True)
        ca, other = trustme.CA(), trustme.CA()
        broker = ca.issue_cert(*hosts, common_name="voicebus-test-broker")
        client = ca.issue_cert("voicebus-test-client", common_name="voicebus-test-client")
        found = cls(
            ca_file=directory / "ca.pem",
            broker_keystore=directory / "broker-keystore.pem",
            client_cert_file=directory / "client.pem",
            client_key_file=directory / "client.key",
            other_ca_file=directory / "other-ca.pem",
        )
        ca.cert_pem.write_to_path(str(found.ca_file))
        other.cert_pem.write_to_path(str(found.other_ca_file))
        cls.keystore(broker, found.broker_keystore)
        found.client_cert_file.write_bytes(b"".join(b.bytes() for b in client.cert_chain_pems))
        found.client_key_file.write_bytes(_pkcs8(client.private_key_pem.bytes()))
        return found

    @staticmethod
    def keystore(cert: trustme.LeafCert, path: Path) -> Path:
        """``cert`` as a PEM keystore: its PKCS#8 key, then its certificate chain."""
        chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
        path.write_bytes(_pkcs8(cert.private_key_pem.bytes()) + chain)
        return path


@contextlib.contextmanager
def secured_kafka(
    directory: Path, *, protocol: str, mutual: bool = False, users: dict[str, str] | None = None
) -> Iterator[tuple[ApacheKafka, Certificates]]:
    """A private one-node Apache Kafka whose client listener speaks ``protocol`` with
    certificates of a fresh CA (``mutual``: client certificates from it are required;
    ``users``: SCRAM users). Skips where only Tansu can run: it has no TLS or SASL."""
    if own_broker_kind() != "apache-kafka":
        pytest.skip(f"{protocol} needs the local Apache Kafka (Tansu has no TLS or SASL)")
    certs = Certificates.create(directory)
    listener = ClientListener(
        protocol=protocol,
        mechanisms=("SCRAM-SHA-256", "SCRAM-SHA-512") if users else (),
        users=users or {},
        keystore=certs.broker_keystore,
        truststore=certs.ca_file if mutual else None,
    )
    with ApacheKafka(listener=listener) as kafka:
        yield kafka, certs
