"""The harness's fake EC2 instance identity signature, and the CFN_V1 header built from it.

On EC2, IMDS serves ``dynamic/instance-identity/document`` (JSON text) and
``dynamic/instance-identity/signature``: base64 of an RSA SHA-256 PKCS#1 v1.5 signature over the
document's bytes, wrapped in 64-character lines (and ``/pkcs7``, a PKCS#7 signed-data of the
document). AWS signs with its own key; the harness signs with the TEST-ONLY key in
``identity_test_key.pem`` (committed on purpose, protects nothing), so the IMDS double (signs) and
the patched moto server (verifies CFN_V1 requests) agree without sharing state.

cfn-bootstrap's ``CFNSigner`` (``cfnbootstrap/aws_client.py:50-65``) builds
``Authorization: CFN_V1 <base64(document bytes)>:<signature with newlines removed>``, the document
being the IMDS text ``rstrip()``-ed (``cfnbootstrap/util.py:305-320``); :func:`cfn_v1_header`
builds the same header for the harness's self-tests.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
import textwrap
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

KEY_PATH = Path(__file__).resolve().parent / "identity_test_key.pem"


@functools.lru_cache(maxsize=1)
def private_key() -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(KEY_PATH.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def public_key() -> rsa.RSAPublicKey:
    return private_key().public_key()


@functools.lru_cache(maxsize=1)
def certificate() -> x509.Certificate:
    """A self-signed certificate for the test key (only to build the PKCS#7 answer)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ecs-bootstrap test identity")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=36500))
            .sign(private_key(), hashes.SHA256()))


def _wrap64(data: bytes) -> str:
    return "\n".join(textwrap.wrap(base64.b64encode(data).decode(), 64))


def sign(document: bytes) -> str:
    """What IMDS serves at ``/signature`` for `document`: base64, 64-character lines."""
    raw = private_key().sign(document, padding.PKCS1v15(), hashes.SHA256())
    return _wrap64(raw)


def pkcs7_signature(document: bytes) -> str:
    """What IMDS serves at ``/pkcs7``: base64 DER PKCS#7 signed-data holding `document` (as
    bytes, not S/MIME-canonicalised text), no PEM armour."""
    der = (pkcs7.PKCS7SignatureBuilder().set_data(document)
           .add_signer(certificate(), private_key(), hashes.SHA256())
           .sign(serialization.Encoding.DER,
                 [pkcs7.PKCS7Options.NoCerts, pkcs7.PKCS7Options.Binary]))
    return _wrap64(der)


def verify(document: bytes, signature_b64: str) -> bool:
    """True when `signature_b64` (newlines allowed) is the test key's signature of `document`."""
    try:
        raw = base64.b64decode("".join(signature_b64.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        public_key().verify(raw, document, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def cfn_v1_header(document_text: str, signature: str) -> str:
    """The Authorization header cfn-bootstrap's CFNSigner sends."""
    doc = document_text.rstrip().encode("utf-8")
    return "CFN_V1 %s:%s" % (base64.b64encode(doc).decode(), signature.rstrip().replace("\n", ""))


def parse_cfn_v1(header: str) -> tuple[bytes, str] | None:
    """(document bytes, signature) of a ``CFN_V1 <b64 doc>:<sig>`` header; None if malformed."""
    if not header.startswith("CFN_V1 "):
        return None
    rest = header[len("CFN_V1 "):].strip()
    doc_b64, sep, sig = rest.partition(":")
    if not sep or not doc_b64 or not sig:
        return None
    try:
        doc = base64.b64decode(doc_b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    return doc, sig
