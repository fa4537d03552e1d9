"""OpenPGP signing keys and detached SHA256SUMS signatures (mirror.formats.openpgp).

Keys are made in the test: with pysequoia (RSA, ECDSA P-256, Ed25519, and refused kinds), and with
a real GnuPG in a throw-away GNUPGHOME, the way GoReleaser's standard Terraform provider set-up
signs (``gpg --batch --detach-sign`` over the SHA256SUMS file).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pysequoia
import pytest

from mirror.domain.errors import BadRequest
from mirror.formats.openpgp import (
    ED25519_WARNING,
    MAX_PUBLIC_KEY_BYTES,
    MAX_SIGNATURE_BYTES,
    MAX_SIGNED_DATA_BYTES,
    SigningKey,
    parse_public_key,
    verify_detached,
)

SUMS = (
    b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  "
    b"terraform-provider-demo_1.0.0_linux_amd64.zip\n"
    b"fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210  "
    b"terraform-provider-demo_1.0.0_darwin_arm64.zip\n"
)


def _generate(suite: pysequoia.CipherSuite, **options: object) -> pysequoia.Tsk:
    return pysequoia.Tsk.generate("Provider Signing <sign@example.com>", cipher_suite=suite, **options)


def _sign(tsk: pysequoia.Tsk, data: bytes, *, armor: bool = False) -> bytes:
    return pysequoia.sign(tsk.signer(), data, mode=pysequoia.SignatureMode.DETACHED, armor=armor)


def _public(tsk: pysequoia.Tsk) -> str:
    return str(tsk.extract_certificate())


@pytest.fixture(scope="module")
def tsks() -> dict[str, pysequoia.Tsk]:
    return {
        "rsa": _generate(pysequoia.CipherSuite.RSA2k),
        "ecdsa": _generate(pysequoia.CipherSuite.P256),
        "eddsa": _generate(pysequoia.CipherSuite.Cv25519),
    }


@pytest.fixture(scope="module")
def keys(tsks: dict[str, pysequoia.Tsk]) -> dict[str, SigningKey]:
    return {name: parse_public_key(_public(tsk)) for name, tsk in tsks.items()}


def _refused(match: str, call, *args) -> BadRequest:
    with pytest.raises(BadRequest, match=match) as caught:
        call(*args)
    message = caught.value.message
    assert "\n" not in message and "backtrace" not in message.lower()
    return caught.value


# -- keys


@pytest.mark.parametrize("name", ["rsa", "ecdsa", "eddsa"])
def test_a_public_key_is_parsed(name: str, tsks: dict[str, pysequoia.Tsk]) -> None:
    cert = tsks[name].extract_certificate()
    key = parse_public_key(str(cert))
    assert key.fingerprint == cert.fingerprint.upper()
    assert key.key_id == cert.fingerprint.upper()[-16:]
    assert len(key.key_id) == 16 and key.key_id == key.key_id.upper()
    assert key.algorithm == name
    assert key.ascii_armor.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert "PRIVATE" not in key.ascii_armor
    # the armor served back parses to the same key
    again = parse_public_key(key.ascii_armor)
    assert (again.fingerprint, again.algorithm) == (key.fingerprint, key.algorithm)
    # bytes are accepted too
    assert parse_public_key(str(cert).encode()).fingerprint == key.fingerprint


def test_rsa_and_ecdsa_have_no_warnings_ed25519_warns(keys: dict[str, SigningKey]) -> None:
    assert keys["rsa"].warnings == ()
    assert keys["ecdsa"].warnings == ()
    assert keys["eddsa"].warnings == (ED25519_WARNING,)
    assert "1.11" in ED25519_WARNING


def test_a_secret_key_is_refused(tsks: dict[str, pysequoia.Tsk]) -> None:
    armored_secret = str(tsks["ecdsa"])
    assert "PRIVATE KEY BLOCK" in armored_secret
    _refused("secret", parse_public_key, armored_secret)
    # the same secret packets under a public-key armor header
    relabelled = pysequoia.armor(bytes(tsks["ecdsa"]), pysequoia.ArmorKind.PublicKey)
    _refused("secret", parse_public_key, relabelled)


def test_several_certificates_in_one_text_are_refused(tsks: dict[str, pysequoia.Tsk]) -> None:
    two = _public(tsks["rsa"]) + "\n" + _public(tsks["ecdsa"])
    _refused("one public key at a time", parse_public_key, two)
    # one armor block holding two certificates
    joined = bytes(tsks["rsa"].extract_certificate()) + bytes(tsks["ecdsa"].extract_certificate())
    block = pysequoia.armor(joined, pysequoia.ArmorKind.PublicKey)
    _refused("2 public keys", parse_public_key, block)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("hello, this is not a key", "ASCII-armored"),
        ("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n", "not valid"),
        ("-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n", "ASCII-armored"),
    ],
)
def test_garbage_keys_are_refused(text: str, match: str) -> None:
    _refused(match, parse_public_key, text)


def test_a_signature_is_not_a_key(tsks: dict[str, pysequoia.Tsk]) -> None:
    armored_sig = _sign(tsks["rsa"], SUMS, armor=True).decode()
    _refused("ASCII-armored|no public key", parse_public_key, armored_sig)
    relabelled = pysequoia.armor(_sign(tsks["rsa"], SUMS), pysequoia.ArmorKind.PublicKey)
    _refused("no public key|not valid|cannot be read", parse_public_key, relabelled)


def test_an_oversized_key_is_refused(keys: dict[str, SigningKey]) -> None:
    huge = keys["rsa"].ascii_armor + "\n" + "A" * MAX_PUBLIC_KEY_BYTES
    error = _refused("too large", parse_public_key, huge)
    assert error.status == 413


def test_unsupported_algorithms_are_refused() -> None:
    ed448 = _generate(pysequoia.CipherSuite.Cv448)
    _refused("unsupported signing key algorithm", parse_public_key, _public(ed448))
    v6 = pysequoia.Tsk.generate(
        "v6 <v6@example.com>", profile=pysequoia.Profile.RFC9580, cipher_suite=pysequoia.CipherSuite.Cv25519
    )
    _refused("version 6", parse_public_key, _public(v6))


# -- signatures


@pytest.mark.parametrize("name", ["rsa", "ecdsa", "eddsa"])
def test_the_right_key_among_several_verifies(
    name: str, tsks: dict[str, pysequoia.Tsk], keys: dict[str, SigningKey]
) -> None:
    signature = _sign(tsks[name], SUMS)
    ordered = [keys[other] for other in ("rsa", "ecdsa", "eddsa") if other != name] + [keys[name]]
    assert verify_detached(SUMS, signature, ordered) == keys[name]
    assert verify_detached(SUMS, signature, [keys[name]]) == keys[name]


def test_keys_are_tried_in_order(tsks: dict[str, pysequoia.Tsk], keys: dict[str, SigningKey]) -> None:
    signature = _sign(tsks["ecdsa"], SUMS)
    # the same certificate listed twice (e.g. once per namespace): the first listing wins
    relisted = parse_public_key(keys["ecdsa"].ascii_armor)
    chosen = verify_detached(SUMS, signature, [keys["rsa"], keys["ecdsa"], relisted])
    assert chosen is keys["ecdsa"]


def test_tampered_data_is_refused(tsks: dict[str, pysequoia.Tsk], keys: dict[str, SigningKey]) -> None:
    signature = _sign(tsks["rsa"], SUMS)
    tampered = SUMS.replace(b"0123", b"0124", 1)
    error = _refused("does not match the signed file", verify_detached, tampered, signature, list(keys.values()))
    assert keys["rsa"].key_id in error.message
    _refused("does not match", verify_detached, SUMS + b"\n", signature, [keys["rsa"]])


def test_a_signature_by_another_key_is_refused(
    tsks: dict[str, pysequoia.Tsk], keys: dict[str, SigningKey]
) -> None:
    signature = _sign(tsks["eddsa"], SUMS)
    error = _refused("not one of the keys", verify_detached, SUMS, signature, [keys["rsa"], keys["ecdsa"]])
    assert keys["rsa"].key_id in error.message and keys["ecdsa"].key_id in error.message
    _refused("no signing keys", verify_detached, SUMS, signature, [])


def test_an_armored_signature_is_refused_with_the_reason(
    tsks: dict[str, pysequoia.Tsk], keys: dict[str, SigningKey]
) -> None:
    armored = _sign(tsks["rsa"], SUMS, armor=True)
    assert armored.startswith(b"-----BEGIN PGP SIGNATURE-----")
    error = _refused("binary detached signature", verify_detached, SUMS, armored, [keys["rsa"]])
    assert ".sig" in error.message
    _refused("binary", verify_detached, SUMS, b"\n  " + armored, [keys["rsa"]])


@pytest.mark.parametrize(
    ("signature", "match"),
    [
        (b"", "empty"),
        (b"this is not a signature", "not a binary OpenPGP signature"),
        (b"\xc2\x05\x04\x00\x00", "not valid OpenPGP|cannot be read"),
        (b"\x89" + os.urandom(40), "not valid OpenPGP|cannot be read|detached OpenPGP signature only"),
    ],
)
def test_garbage_signatures_are_refused(signature: bytes, match: str, keys: dict[str, SigningKey]) -> None:
    _refused(match, verify_detached, SUMS, signature, [keys["rsa"]])


def test_a_key_or_an_inline_message_is_not_a_detached_signature(
    tsks: dict[str, pysequoia.Tsk], keys: dict[str, SigningKey]
) -> None:
    public_packets = bytes(tsks["rsa"].extract_certificate())
    _refused("detached OpenPGP signature only", verify_detached, SUMS, public_packets, [keys["rsa"]])
    inline = pysequoia.sign(tsks["rsa"].signer(), SUMS, mode=pysequoia.SignatureMode.INLINE, armor=False)
    _refused("detached OpenPGP signature only", verify_detached, SUMS, inline, [keys["rsa"]])
    two = _sign(tsks["rsa"], SUMS) + _sign(tsks["ecdsa"], SUMS)
    _refused("2 signatures", verify_detached, SUMS, two, [keys["rsa"], keys["ecdsa"]])


def test_oversized_inputs_are_refused(tsks: dict[str, pysequoia.Tsk], keys: dict[str, SigningKey]) -> None:
    signature = _sign(tsks["rsa"], SUMS)
    error = _refused("signed file is too large", verify_detached, b"x" * (MAX_SIGNED_DATA_BYTES + 1), signature, [keys["rsa"]])
    assert error.status == 413
    padded = signature + b"\x00" * MAX_SIGNATURE_BYTES
    error = _refused("signature is too large", verify_detached, SUMS, padded, [keys["rsa"]])
    assert error.status == 413


# -- GnuPG, as GoReleaser's standard set-up uses it

#: GnuPG, as GoReleaser's standard set-up signs with it (scripts/test.sh installs it when missing)
GPG = shutil.which("gpg") or "gpg"


class GnuPG:
    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(mode=0o700)
        self.env = {**os.environ, "GNUPGHOME": str(home), "LC_ALL": "C"}

    def __call__(self, *args: str, faked_time: str | None = None) -> str:
        command = [GPG or "gpg", "--batch", "--no-tty", "--passphrase", "", "--pinentry-mode", "loopback"]
        if faked_time:
            command += ["--faked-system-time", faked_time]
        done = subprocess.run(
            [*command, *args], env=self.env, capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def fingerprint(self, user: str) -> str:
        listing = self("--with-colons", "--list-keys", user)
        return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))

    def stop(self) -> None:
        subprocess.run(
            ["gpgconf", "--kill", "gpg-agent"], env=self.env, capture_output=True, timeout=30, check=False
        )


@pytest.fixture(scope="module")
def gnupg(tmp_path_factory: pytest.TempPathFactory):
    gpg = GnuPG(tmp_path_factory.mktemp("gpg") / "home")
    yield gpg
    gpg.stop()


def test_a_gnupg_key_and_detached_signature_verify(
    gnupg: GnuPG, tmp_path: Path, keys: dict[str, SigningKey]
) -> None:
    gnupg("--quick-gen-key", "Release Signing <release@example.com>", "rsa2048", "sign,cert", "0")
    fingerprint = gnupg.fingerprint("release@example.com")
    key = parse_public_key(gnupg("--armor", "--export", fingerprint))
    assert key.fingerprint == fingerprint and key.key_id == fingerprint[-16:]
    assert (key.algorithm, key.warnings) == ("rsa", ())

    sums = tmp_path / "terraform-provider-demo_1.0.0_SHA256SUMS"
    sums.write_bytes(SUMS)
    # what GoReleaser's terraform-provider template runs
    gnupg("--local-user", fingerprint, "--output", f"{sums}.sig", "--detach-sign", str(sums))
    signature = Path(f"{sums}.sig").read_bytes()
    assert verify_detached(SUMS, signature, [keys["ecdsa"], key]) == key
    _refused("does not match", verify_detached, SUMS + b"x", signature, [key])
    # its --armor variant is what Terraform cannot use
    gnupg("--local-user", fingerprint, "--armor", "--output", f"{sums}.asc", "--detach-sign", str(sums))
    _refused("binary detached", verify_detached, SUMS, Path(f"{sums}.asc").read_bytes(), [key])


def test_a_gnupg_ecdsa_subkey_signs_for_its_primary(gnupg: GnuPG, tmp_path: Path) -> None:
    gnupg("--quick-gen-key", "Subkeys <subkeys@example.com>", "nistp256", "cert", "0")
    fingerprint = gnupg.fingerprint("subkeys@example.com")
    gnupg("--quick-add-key", fingerprint, "nistp256/ecdsa", "sign", "0")
    key = parse_public_key(gnupg("--armor", "--export", fingerprint))
    assert (key.key_id, key.algorithm) == (fingerprint[-16:], "ecdsa")
    sums = tmp_path / "SHA256SUMS"
    sums.write_bytes(SUMS)
    gnupg("--local-user", fingerprint, "--detach-sign", str(sums))
    assert verify_detached(SUMS, Path(f"{sums}.sig").read_bytes(), [key]) == key


def test_an_expired_key_still_verifies_what_it_signed(gnupg: GnuPG, tmp_path: Path) -> None:
    sums = tmp_path / "SHA256SUMS"
    sums.write_bytes(SUMS)
    # a key made in 2020 that expired a day later, and a signature made while it was valid
    gnupg("--quick-gen-key", "Old <old@example.com>", "nistp256", "sign", "1d", faked_time="20200101T000000")
    old = gnupg.fingerprint("old@example.com")
    gnupg("--local-user", old, "--output", f"{sums}.old.sig", "--detach-sign", str(sums), faked_time="20200101T010000")
    key = parse_public_key(gnupg("--armor", "--export", old))
    assert key.key_id == old[-16:] and key.warnings == ()
    expiry = pysequoia.Cert.from_bytes(key.ascii_armor.encode()).expiration
    assert expiry is not None and expiry.year == 2020
    assert verify_detached(SUMS, Path(f"{sums}.old.sig").read_bytes(), [key]) == key

    # a signature made after the key's expiry: Sequoia's policy refuses it, with the reason
    gnupg("--quick-gen-key", "Late <late@example.com>", "nistp256", "sign", "never", faked_time="20200101T000000")
    late = gnupg.fingerprint("late@example.com")
    gnupg("--local-user", late, "--output", f"{sums}.late.sig", "--detach-sign", str(sums), faked_time="20200105T000000")
    gnupg("--quick-set-expire", late, "1d", faked_time="20200102T000000")
    late_key = parse_public_key(gnupg("--armor", "--export", late))
    error = _refused("after key", verify_detached, SUMS, Path(f"{sums}.late.sig").read_bytes(), [late_key])
    assert late_key.key_id in error.message and "2020-01-05" in error.message
