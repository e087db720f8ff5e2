"""age through pyrage: streams with bounded memory, errors, keys that never show."""

from __future__ import annotations

import datetime as dt
import threading
import tracemalloc
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pyrage
import pytest

from odeion_archive import AgeIdentities, AgeRecipients
from odeion_archive._age import fingerprint, new_identity, recipient_of
from odeion_archive._agestream import (
    coalesce,
    compressed,
    decompressed,
    decrypt_chunks,
    encrypt_chunks,
)
from odeion_archive._manifest import ComponentEntry, Encryption, Manifest, MemberEntry
from odeion_archive.errors import CancelledError, ManifestError, UsageError

IDENTITY = pyrage.x25519.Identity.generate()
RECIPIENT = IDENTITY.to_public()


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 3 * 65536 + 5, 1_000_000])
def test_a_stream_encrypts_to_an_age_file_that_pyrage_decrypts(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    pieces = [data[i : i + 10_000] for i in range(0, len(data), 10_000)]
    cipher = b"".join(encrypt_chunks(pieces, [RECIPIENT]))
    assert cipher.startswith(b"age-encryption.org/v1\n")
    assert pyrage.decrypt(cipher, [IDENTITY]) == data
    assert b"".join(decrypt_chunks([cipher[:7], cipher[7:]], [IDENTITY])) == data


def test_memory_stays_bounded_whatever_the_size() -> None:
    block = b"\x5a" * (1 << 20)
    total = 64

    def plaintext() -> Iterator[bytes]:
        for _ in range(total):
            yield block

    tracemalloc.start()
    try:
        written = 0
        for piece in coalesce(encrypt_chunks(plaintext(), [RECIPIENT])):
            written += len(piece)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written > total << 20
    # 64 MiB went through; a few MiB (queue, one coalesced piece, the source block) were held.
    assert peak < 8 << 20, peak


def test_an_error_of_the_source_arrives_as_it_is() -> None:
    def failing() -> Iterator[bytes]:
        yield b"x" * 100_000
        raise CancelledError("cancelled by the host")

    with pytest.raises(CancelledError, match="cancelled by the host"):
        for _ in encrypt_chunks(failing(), [RECIPIENT]):
            pass


def test_closing_early_stops_the_worker() -> None:
    before = threading.active_count()

    def endless() -> Iterator[bytes]:
        while True:
            yield b"y" * 65536

    stream = encrypt_chunks(endless(), [RECIPIENT])
    next(stream)
    assert isinstance(stream, Generator)
    stream.close()
    assert threading.active_count() == before


def test_tampered_ciphertext_fails_to_decrypt() -> None:
    cipher = bytearray(pyrage.encrypt(b"z" * 200_000, [RECIPIENT]))
    cipher[len(cipher) // 2] ^= 1
    with pytest.raises(OSError, match="age decryption failed"):
        for _ in decrypt_chunks([bytes(cipher)], [IDENTITY]):
            pass
    other = pyrage.x25519.Identity.generate()
    with pytest.raises(OSError, match="No matching keys"):
        for _ in decrypt_chunks([pyrage.encrypt(b"a", [RECIPIENT])], [other]):
            pass


def test_identities_never_show(tmp_path: Path) -> None:
    identity, recipient = new_identity()
    assert recipient_of(identity) == recipient
    key = tmp_path / "key.txt"
    key.write_text(f"# public key: {recipient}\n{identity}\n")
    loaded = AgeIdentities.from_file(key)
    assert identity not in repr(loaded) and "1 identities" in repr(loaded)
    assert loaded.fingerprints == (fingerprint(recipient),)
    phrase = AgeIdentities.from_passphrase("secret words")
    assert "secret words" not in repr(phrase)
    assert "secret words" not in repr(AgeRecipients.with_passphrase("secret words"))
    broken = tmp_path / "broken.txt"
    broken.write_text(f"# a comment\n{identity[:-3]}xyz\n")
    with pytest.raises(UsageError) as caught:
        AgeIdentities.from_file(broken)
    assert "line 2" in str(caught.value) and identity[:-3] not in str(caught.value)
    with pytest.raises(UsageError, match="holds no age identity"):
        AgeIdentities.from_text("# nothing here\n")


def test_recipients_are_checked() -> None:
    with pytest.raises(UsageError, match="age1"):
        AgeRecipients.to("ssh-ed25519 AAAA")
    with pytest.raises(UsageError, match="at least one recipient"):
        AgeRecipients.to()
    with pytest.raises(UsageError, match="twice"):
        AgeRecipients.to(str(RECIPIENT), str(RECIPIENT))
    assert AgeRecipients.to(str(RECIPIENT)).fingerprints == (fingerprint(str(RECIPIENT)),)


def test_a_manifest_older_than_1_2_cannot_claim_encryption() -> None:
    entry = MemberEntry("manifest.json.age", 10, "0" * 64)
    encryption = Encryption(scheme="age", recipients=("ab" * 8,), members=(entry,))
    common = {
        "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "library_version": "1",
        "server_version": "1",
        "schema_version": 2,
        "format": "zip",
        "components": (ComponentEntry("settings", 1),),
    }
    manifest = Manifest(**common, encryption=encryption)  # type: ignore[arg-type]
    assert Manifest.from_json(manifest.to_json()) == manifest
    with pytest.raises(ManifestError, match="older than 1.2"):
        Manifest(**common, manifest_version=(1, 1), encryption=encryption)  # type: ignore[arg-type]
    with pytest.raises(ManifestError, match="scheme"):
        Encryption(scheme="gpg")


# -- hostile encrypted archives ------------------------------------------------------


def _encrypted_archive(
    path: Path, *, whole: Callable[[Manifest], Manifest] | None = None
) -> AgeIdentities:
    """An encrypted zip archive at ``path``; ``whole`` changes the encrypted manifest."""
    from odeion_archive._age import AgeRecipients
    from odeion_archive._archive import ArchiveBuilder
    from odeion_archive._encrypted import Encryptor
    from odeion_archive.formats.zip import ZipFormat

    encryptor = Encryptor(AgeRecipients.to(str(RECIPIENT)))
    if whole is not None:
        original = encryptor.encrypt_manifest
        encryptor.encrypt_manifest = lambda m: original(whole(m))  # type: ignore[method-assign,assignment]
    head = Manifest(
        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        library_version="1",
        server_version="1",
        schema_version=2,
        format="zip",
        components=(ComponentEntry("settings", 1),),
    )
    with path.open("wb") as stream:
        builder = ArchiveBuilder(ZipFormat(), stream, head=head, encryptor=encryptor)
        builder.add_member("settings", "system_settings.jsonl", [b'{"key":"a"}\n' * 1000])
        builder.finish()
    return AgeIdentities((str(IDENTITY),))


def _open(path: Path, keys: AgeIdentities) -> Any:
    from odeion_archive import Registry
    from odeion_archive._archive import ArchiveFile
    from odeion_archive._encrypted import EncryptedArchive

    archive = ArchiveFile.open(path, Registry.default(entry_points=False))
    return EncryptedArchive.open(archive, keys)


def test_an_encrypted_manifest_that_disagrees_is_refused(tmp_path: Path) -> None:
    import attrs

    from odeion_archive.errors import CorruptArchiveError

    keys = _encrypted_archive(tmp_path / "ok.zip")
    with _open(tmp_path / "ok.zip", keys) as opened:
        member = opened.manifest.members[0]
        assert opened.open_member(member.path).read() == b'{"key":"a"}\n' * 1000

    for change in (
        lambda m: attrs.evolve(m, schema_version=1),
        lambda m: attrs.evolve(
            m,
            components=(
                attrs.evolve(
                    m.components[0], members=(MemberEntry("settings/other.jsonl", 1, "0" * 64),)
                ),
            ),
        ),
    ):
        path = tmp_path / "swapped.zip"
        path.unlink(missing_ok=True)
        keys = _encrypted_archive(path, whole=change)
        with pytest.raises(CorruptArchiveError, match="disagree"):
            _open(path, keys)


def test_a_plaintext_that_differs_from_the_encrypted_manifest_is_refused(tmp_path: Path) -> None:
    import attrs

    from odeion_archive.errors import CorruptArchiveError

    def lie(m: Manifest) -> Manifest:
        entry = m.components[0].members[0]
        wrong = attrs.evolve(entry, sha256="f" * 64)
        return attrs.evolve(m, components=(attrs.evolve(m.components[0], members=(wrong,)),))

    keys = _encrypted_archive(tmp_path / "lie.zip", whole=lie)
    with _open(tmp_path / "lie.zip", keys) as opened:
        with pytest.raises(CorruptArchiveError, match="sha256"):
            opened.open_member("settings/system_settings.jsonl").read()
        assert not opened.verify().ok


# -- members are compressed before they are encrypted ----------------------------------


def test_a_member_is_compressed_then_encrypted_and_read_back_whole() -> None:
    identity = pyrage.x25519.Identity.generate()
    plain = [b"row %d\tsome text that repeats\n" % i for i in range(200_000)]
    cipher = list(encrypt_chunks(compressed(plain), [identity.to_public()]))
    assert sum(map(len, cipher)) < sum(map(len, plain)) // 4  # it compressed
    back = decompressed(decrypt_chunks(cipher, [identity]), lambda exc: exc)
    assert b"".join(back) == b"".join(plain)


def test_a_small_frame_that_claims_much_is_read_in_bounded_pieces() -> None:
    import zstandard

    bomb = zstandard.ZstdCompressor(level=19).compress(b"\0" * (512 << 20))
    assert len(bomb) < 64 << 10
    tracemalloc.start()
    try:
        pieces = decompressed([bomb], lambda exc: exc)
        first = [next(pieces) for _ in range(4)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert all(len(piece) <= 1 << 20 for piece in first)
    assert peak < 16 << 20  # nothing near the 512 MiB it claims


def test_a_damaged_frame_is_an_error_of_its_own() -> None:
    seen: list[Exception] = []

    def failed(exc: Exception) -> BaseException:
        seen.append(exc)
        return ValueError("damaged")

    frame = bytearray(b"".join(compressed([b"x" * 100_000])))
    frame[len(frame) // 2] ^= 0xFF
    with pytest.raises(ValueError, match="damaged"):
        b"".join(decompressed([bytes(frame)], failed))
    assert seen and "zstd" in str(seen[0])
