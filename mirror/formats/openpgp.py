"""OpenPGP for provider signatures: namespace signing keys and detached SHA256SUMS signatures.

Terraform installs a provider only when the ``SHA256SUMS`` file verifies against one of the keys
the registry lists (``signing_keys.gpg_public_keys``), so the registry checks the same thing
before it stores anything. Facts taken from Terraform 1.0.3, 1.11.4 and 1.15.5
(docs PROTOCOL.md section 5):

- the signature must be a **binary** detached OpenPGP signature over the exact SHA256SUMS bytes;
  an ASCII-armored ``.asc`` fails on every Terraform, so one is refused here with that reason;
- RSA and ECDSA (P-256) keys verify everywhere; Ed25519 (EdDSA) keys fail before Terraform 1.11,
  so they are accepted with a warning;
- keys are tried in order, and expired keys are accepted.

Why pysequoia and not python-gnupg: pysequoia binds Sequoia, a maintained OpenPGP implementation,
and ships as a manylinux wheel. It parses and verifies in-process, from bytes: no ``gpg`` binary
to install, no subprocess, no keyring, trust database or agent state on disk to keep in step
between replicas, nothing to clean up after a request. python-gnupg drives the ``gpg`` executable
and its home directory, which is all of those things.

Expired keys. Sequoia checks that the signing key was alive *when the signature was made* (its
creation time), not now, so a signature made before the key expired keeps verifying after the
key has expired, as Terraform accepts it. A signature whose creation time is after the key's
expiry is refused by Sequoia's policy, and pysequoia offers no way to verify at another time;
such a signature is reported with a line saying so (Terraform would accept it). The key itself
is accepted whether or not it has expired.

Choices made here:

- one certificate per key text: a text holding several certificates is refused (add each key on
  its own), so that a key id always names exactly what was sent;
- secret key material is refused before it is parsed into a certificate, and nothing of it is
  kept; the armor served back is re-encoded from the public packets only;
- version 6 (RFC 9580) keys are refused: no Terraform reads them;
- signing algorithms accepted: RSA, ECDSA on NIST P-256/P-384/P-521, EdDSA Ed25519 (with the
  warning). DSA, ElGamal, Ed448, Brainpool and post-quantum keys are refused;
- sizes are bounded before any parsing.

Errors are :class:`mirror.domain.errors.BadRequest` with one readable line (status 413 for
oversized input); pysequoia's own messages, which may carry a Rust backtrace, are cut to their
first line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pysequoia
from pysequoia import packet as pgp_packet

from mirror.domain.errors import BadRequest

#: largest armored public key accepted (real ones are a few KiB; heavily certified ones tens)
MAX_PUBLIC_KEY_BYTES = 256 * 1024
#: largest detached signature accepted (an RSA-4096 signature is about 600 bytes)
MAX_SIGNATURE_BYTES = 16 * 1024
#: largest signed file accepted (a SHA256SUMS for dozens of platforms is a few KiB)
MAX_SIGNED_DATA_BYTES = 1024 * 1024

ED25519_WARNING = "Terraform before 1.11 cannot verify signatures made with an Ed25519 key"

_ARMOR_BEGIN = b"-----BEGIN PGP "

# curve OIDs (DER content bytes) found in ECDSA / EdDSA key packets
_ECDSA_CURVES = {
    bytes.fromhex("2a8648ce3d030107"): "P-256",
    bytes.fromhex("2b81040022"): "P-384",
    bytes.fromhex("2b81040023"): "P-521",
}
_ED25519_LEGACY_OID = bytes.fromhex("2b06010401da470f01")


@dataclass(frozen=True)
class SigningKey:
    """A namespace's public signing key, as listed in ``signing_keys.gpg_public_keys``.

    ``key_id`` is the primary key's long key id (16 upper-case hex digits, as Terraform and the
    public registry show it); ``ascii_armor`` is the public certificate re-armored, for serving
    back; ``algorithm`` is the family of the key that signs ("rsa", "ecdsa" or "eddsa");
    ``warnings`` are lines to show the publisher (the key is accepted).
    """

    key_id: str
    fingerprint: str
    algorithm: str
    ascii_armor: str
    warnings: tuple[str, ...] = field(default=())


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _is_tag(packet: pgp_packet.Packet, tag: pgp_packet.Tag) -> bool:
    # pysequoia's enums compare with == but are not hashable
    return bool(packet.tag == tag)


def _key_material(packet: pgp_packet.Packet) -> tuple[str | None, str]:
    """(family, description) of a key packet; family None when Terraform cannot use it to sign."""
    algorithm = packet.key_algorithm
    algo = pgp_packet.PublicKeyAlgorithm
    if algorithm in (algo.RSAEncryptSign, algo.RSASign):
        return "rsa", "RSA"
    if algorithm == algo.ECDSA:
        body = packet.body
        # v4 key packet body: version, 4-byte creation time, algorithm, OID length, OID, point
        oid = body[7 : 7 + body[6]] if len(body) > 7 else b""
        curve = _ECDSA_CURVES.get(oid)
        if curve is None:
            return None, "ECDSA on a curve other than NIST P-256, P-384 or P-521"
        return "ecdsa", f"ECDSA {curve}"
    if algorithm == algo.EdDSA:
        body = packet.body
        oid = body[7 : 7 + body[6]] if len(body) > 7 else b""
        if oid != _ED25519_LEGACY_OID:
            return None, "EdDSA on a curve other than Ed25519"
        return "eddsa", "Ed25519"
    if algorithm == algo.Ed25519:
        return "eddsa", "Ed25519"
    return None, repr(algorithm).rsplit(".", 1)[-1]


def _check_size(data: bytes, limit: int, what: str) -> None:
    if len(data) > limit:
        raise BadRequest(f"{what} is too large ({len(data)} bytes; at most {limit})", status=413)


def _packets(data: bytes, what: str) -> list[pgp_packet.Packet]:
    try:
        return list(pgp_packet.PacketPile.from_bytes(data))
    except Exception as error:  # pysequoia raises plain exceptions with parser messages
        raise BadRequest(f"{what} is not valid OpenPGP data: {_first_line(error)}") from None


def parse_public_key(text: str | bytes) -> SigningKey:
    """Parse one ASCII-armored OpenPGP public key (certificate) into a :class:`SigningKey`.

    Refused (BadRequest, one line): not armored, not a public key, secret key material, several
    certificates, a version 6 key, no usable signing key, oversized input.
    """
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else bytes(text)
    _check_size(raw, MAX_PUBLIC_KEY_BYTES, "the public key")
    stripped = raw.strip()
    if not stripped:
        raise BadRequest("the public key is empty")
    if b"PRIVATE KEY BLOCK" in stripped or b"SECRET KEY BLOCK" in stripped:
        raise BadRequest(
            "this is a secret (private) key: send only the public key (gpg --armor --export KEYID)"
        )
    if not stripped.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"):
        raise BadRequest(
            "the public key must be ASCII-armored, starting with "
            "'-----BEGIN PGP PUBLIC KEY BLOCK-----' (gpg --armor --export KEYID)"
        )
    if stripped.count(b"-----BEGIN PGP ") > 1:
        raise BadRequest("the text holds several armored blocks: send one public key at a time")
    packets = _packets(stripped, "the public key")
    tag = pgp_packet.Tag
    if any(_is_tag(p, tag.SecretKey) or _is_tag(p, tag.SecretSubkey) for p in packets):
        raise BadRequest(
            "this is a secret (private) key: send only the public key (gpg --armor --export KEYID)"
        )
    primaries = [p for p in packets if _is_tag(p, tag.PublicKey)]
    if not primaries:
        raise BadRequest("the text is OpenPGP data but holds no public key")
    if len(primaries) > 1:
        raise BadRequest(
            f"the text holds {len(primaries)} public keys: send one public key at a time"
        )
    try:
        cert = pysequoia.Cert.from_bytes(stripped)
    except Exception as error:
        raise BadRequest(f"the public key cannot be read: {_first_line(error)}") from None
    fingerprint = cert.fingerprint.upper()
    if len(fingerprint) != 40:
        raise BadRequest("version 6 (RFC 9580) keys are not supported: Terraform cannot read them")
    if cert.is_revoked:
        raise BadRequest(f"the key {fingerprint[-16:]} has been revoked")

    family, warnings = _signing_family(packets)
    armor = pysequoia.armor(bytes(cert), pysequoia.ArmorKind.PublicKey)
    return SigningKey(
        key_id=fingerprint[-16:],
        fingerprint=fingerprint,
        algorithm=family,
        ascii_armor=armor,
        warnings=tuple(warnings),
    )


def _signing_family(packets: Sequence[pgp_packet.Packet]) -> tuple[str, list[str]]:
    """The algorithm family of the keys that may sign, and the warnings they call for.

    The primary key counts when its self-signatures allow signing (or say nothing); a subkey
    counts when its binding signature allows signing.
    """
    tag = pgp_packet.Tag
    # (key packet, may sign) in order; the flags come from the signature that follows the key
    candidates: list[tuple[pgp_packet.Packet, bool | None]] = []
    current: int | None = None
    for packet in packets:
        if _is_tag(packet, tag.PublicKey) or _is_tag(packet, tag.PublicSubkey):
            candidates.append((packet, None))
            current = len(candidates) - 1
        elif _is_tag(packet, tag.Signature) and current is not None:
            flags = packet.key_flags
            if flags is not None:
                key, seen = candidates[current]
                candidates[current] = (key, bool(seen) or bool(flags.signing))
        elif _is_tag(packet, tag.UserID) or _is_tag(packet, tag.UserAttribute):
            # user id self-signatures still describe the primary key
            current = 0 if candidates else None
    signers = [
        key
        for index, (key, may_sign) in enumerate(candidates)
        if may_sign or (index == 0 and may_sign is None)
    ]
    if not signers:
        raise BadRequest("the key has no key that may sign (no signing-capable key or subkey)")
    families: list[str] = []
    refused: list[str] = []
    for key in signers:
        family, description = _key_material(key)
        if family is None:
            refused.append(description)
        else:
            families.append(family)
    if not families:
        raise BadRequest(
            f"unsupported signing key algorithm ({', '.join(dict.fromkeys(refused))}): "
            "use an RSA (2048 bits or more) or ECDSA P-256 key"
        )
    warnings = [ED25519_WARNING] if "eddsa" in families else []
    # the family shown is the one of the last signing-capable key: GnuPG and Sequoia sign with
    # the newest signing subkey, which is listed last
    return families[-1], warnings


def _parse_signature(signature: bytes) -> pysequoia.Sig:
    _check_size(signature, MAX_SIGNATURE_BYTES, "the signature")
    if not signature:
        raise BadRequest("the signature is empty")
    if signature.lstrip().startswith(_ARMOR_BEGIN):
        raise BadRequest(
            "the signature is ASCII-armored (.asc): Terraform needs the binary detached "
            "signature (.sig, as made by gpg --detach-sign without --armor)"
        )
    if not signature[0] & 0x80:
        raise BadRequest("the signature is not a binary OpenPGP signature")
    packets = _packets(signature, "the signature")
    tag = pgp_packet.Tag
    if not packets or not all(_is_tag(p, tag.Signature) for p in packets):
        raise BadRequest("the signature file must hold a detached OpenPGP signature only")
    if len(packets) > 1:
        raise BadRequest(
            f"the signature file holds {len(packets)} signatures: Terraform reads one; "
            "sign with a single key"
        )
    kind = packets[0].signature_type
    sig_type = pgp_packet.SignatureType
    if kind != sig_type.Binary and kind != sig_type.Text:
        raise BadRequest("the signature is not a signature over a document (it is a key signature)")
    try:
        return pysequoia.Sig.from_bytes(signature)
    except Exception as error:
        raise BadRequest(f"the signature cannot be read: {_first_line(error)}") from None


def _verifies(data: bytes, sig: pysequoia.Sig, cert: pysequoia.Cert) -> bool:
    try:
        result = pysequoia.verify(bytes=data, store=lambda _ids: [cert], signature=sig)
    except Exception:  # "no valid signatures found", or the policy refused the key or hash
        return False
    return bool(result.valid_sigs)


def _issued_by(sig: pysequoia.Sig, cert_packets: Sequence[pgp_packet.Packet]) -> bool:
    issuers = {(sig.issuer_fingerprint or "").lower(), (sig.issuer_key_id or "").lower()} - {""}
    tag = pgp_packet.Tag
    for packet in cert_packets:
        if _is_tag(packet, tag.PublicKey) or _is_tag(packet, tag.PublicSubkey):
            if {(packet.fingerprint or "").lower(), (packet.key_id or "").lower()} & issuers:
                return True
    return False


def verify_detached(data: bytes, signature: bytes, keys: Sequence[SigningKey]) -> SigningKey:
    """The first of ``keys`` whose certificate verifies ``signature`` over exactly ``data``.

    ``signature`` must be a binary detached signature (what ``gpg --detach-sign`` writes and
    Terraform needs). Refused with BadRequest: armored, malformed or oversized signatures,
    oversized data, no keys, a signature by none of the keys, a signature that does not match
    the data.
    """
    _check_size(data, MAX_SIGNED_DATA_BYTES, "the signed file")
    sig = _parse_signature(signature)
    if not keys:
        raise BadRequest("no signing keys to verify the signature with: add a key first")
    issuer = (sig.issuer_fingerprint or sig.issuer_key_id or "unknown").upper()
    by_issuer: SigningKey | None = None
    expired_at_signing: SigningKey | None = None
    for key in keys:
        armored = key.ascii_armor.encode()
        try:
            cert = pysequoia.Cert.from_bytes(armored)
        except Exception as error:
            raise BadRequest(
                f"the stored key {key.key_id} cannot be read: {_first_line(error)}"
            ) from None
        if _verifies(data, sig, cert):
            return key
        if _issued_by(sig, _packets(armored, "the stored key")):
            by_issuer = by_issuer or key
            expiry = cert.expiration
            if expiry is not None and sig.created is not None and sig.created > expiry:
                expired_at_signing = expired_at_signing or key
    if expired_at_signing is not None:
        raise BadRequest(
            f"the signature was made on {sig.created:%Y-%m-%d}, after key "
            f"{expired_at_signing.key_id} expired ({_expiry_text(expired_at_signing)}):"
            " extend the key's expiry and add it again, or sign again"
        )
    if by_issuer is not None:
        raise BadRequest(
            f"the signature by key {by_issuer.key_id} does not match the signed file "
            "(the file was changed after signing, the signature is for another file, "
            "or the signing subkey was expired or revoked when it signed)"
        )
    listed = ", ".join(key.key_id for key in keys)
    raise BadRequest(f"the signature was made by key {issuer}, which is not one of the keys: {listed}")


def _expiry_text(key: SigningKey) -> str:
    """The expiry date of ``key``'s certificate, for messages ("no expiry" when it has none)."""
    expiry = pysequoia.Cert.from_bytes(key.ascii_armor.encode()).expiration
    return "no expiry" if expiry is None else f"{expiry:%Y-%m-%d}"
