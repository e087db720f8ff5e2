"""targets.toml in the data directory, and the credentials file of an s3 target."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _s3 import ACCESS_KEY, SECRET_KEY, S3Server, s3_spec

from odeion_archive import Archiver, Registry
from odeion_archive.errors import UsageError
from odeion_archive.targets import TargetSpec
from odeion_archive.targets._config import load_specs


def _write(data_dir: Path, text: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "targets.toml").write_text(text)


def test_targets_are_read_from_the_data_directory(tmp_path: Path) -> None:
    _write(
        tmp_path,
        """
[targets.nas]
kind = "dir"
path = "mnt/nas"

[targets.offsite]
kind = "s3"
endpoint = "http://127.0.0.1:9000"
bucket = "odeion-backups"
prefix = "server-1"
path_style = true
allow_http = true
credentials_file = "s3.credentials"
copy_after_backup = false
""",
    )
    nas, offsite = load_specs(tmp_path)
    assert (nas.name, nas.kind, nas.options["path"], nas.copy_after_backup) == (
        "nas",
        "dir",
        "mnt/nas",
        True,
    )
    assert (offsite.kind, offsite.options["bucket"], offsite.copy_after_backup) == (
        "s3",
        "odeion-backups",
        False,
    )
    (tmp_path / "mnt" / "nas").mkdir(parents=True)
    target = Registry.default().target_kind("dir").open(nas)
    assert target.describe() == str(tmp_path / "mnt" / "nas")  # relative to the data directory


def test_no_file_is_no_targets(tmp_path: Path) -> None:
    assert load_specs(tmp_path) == ()
    archiver = Archiver(tmp_path, database_url="postgresql:///unused")
    assert archiver.targets() == []


def test_the_host_passes_targets_instead_of_the_file(tmp_path: Path) -> None:
    _write(tmp_path, '[targets.nas]\nkind = "dir"\npath = "/nowhere"\n')
    archiver = Archiver(
        tmp_path,
        database_url="postgresql:///unused",
        targets=[TargetSpec.directory("usb", tmp_path)],
    )
    assert [s.name for s in archiver.targets()] == ["usb"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[targets.nas\n", "not valid TOML"),
        ('[targets.nas]\npath = "/x"\n', "needs kind"),
        (
            '[targets.nas]\nkind = "dir"\npath = 5\n',
            r"targets.toml: \[targets.nas\] path must be the directory's path in quotes .*not 5",
        ),
        ('[targets.nas]\nkind = "dir"\npath = ""\n', r"\[targets.nas\] path must be"),
        ('[targets.Bad-Name]\nkind = "dir"\n', "lower-case letters"),
        ('[elsewhere]\nkind = "dir"\n', r"only \[targets.NAME\] tables"),
        (
            '[targets.s]\nkind = "s3"\nbucket = "b"\nsecret_access_key = "abc"\n',
            "settings hold credentials",
        ),
        ('[targets.s]\nkind = "s3"\nbucket = "b"\nbukket = "c"\n', "unknown setting bukket"),
        ('[targets.s]\nkind = "s3"\n', "needs bucket"),
        ('[targets.s]\nkind = "ftp"\n', "no storage target kind 'ftp'"),
        (
            '[targets.s]\nkind = "s3"\nbucket = "b"\nendpoint = "http://nas:9000"\n',
            "is plain HTTP; use https, or set allow_http = true",
        ),
        (
            '[targets.s]\nkind = "s3"\nbucket = "b"\nretries = "x"\n',
            "retries must be a whole number",
        ),
        # Each of these made obstore panic (a BaseException) at the first request.
        ('[targets.s]\nkind = "s3"\nbucket = "b"\nendpoint = "::bad"\n', "is not a URL"),
        (
            '[targets.s]\nkind = "s3"\nbucket = "b"\nendpoint = "https://h:99999"\n',
            "is not a URL",
        ),
        (
            '[targets.s]\nkind = "s3"\nbucket = "b"\nendpoint = "ftp://h"\n',
            "is not a URL",
        ),
        ('[targets.s]\nkind = "s3"\nbucket = "b"\nregion = "eu\\nx"\n', "region 'eu\\\\nx'"),
        ('[targets.s]\nkind = "s3"\nbucket = "b c"\n', "bucket 'b c' may hold only"),
        # An overflow in timedelta, and memory: refused with the bounds.
        (
            '[targets.s]\nkind = "s3"\nbucket = "b"\ntimeout = 1000000000000000000000000\n',
            "timeout must be a whole number from 1 to 86400",
        ),
        (
            '[targets.s]\nkind = "s3"\nbucket = "b"\npart_size_mib = 100000\n',
            "part_size_mib must be a whole number from 1 to 5120",
        ),
    ],
)
def test_a_bad_configuration_is_a_usage_error_that_says_what_to_fix(
    tmp_path: Path, text: str, message: str
) -> None:
    _write(tmp_path, text)
    archiver = Archiver(tmp_path, database_url="postgresql:///unused")

    def use_every_target() -> None:
        for spec in load_specs(tmp_path):
            archiver.copy_to(spec.name)

    with pytest.raises(UsageError, match=message):
        use_every_target()


def test_two_targets_of_one_name_are_refused(tmp_path: Path) -> None:
    archiver = Archiver(
        tmp_path,
        database_url="postgresql:///unused",
        targets=[TargetSpec.directory("a", tmp_path), TargetSpec.directory("a", tmp_path)],
    )
    with pytest.raises(UsageError, match="two targets are named a"):
        archiver.targets()


def test_an_unknown_target_name_lists_the_known_ones(tmp_path: Path) -> None:
    archiver = Archiver(
        tmp_path, database_url="postgresql:///unused", targets=[TargetSpec.directory("a", tmp_path)]
    )
    with pytest.raises(UsageError, match=r"no storage target named 'b' \(known: a\)"):
        archiver.copy_to("b")


def test_a_credentials_file_that_others_may_read_is_refused(
    tmp_path: Path, credentials_file: Path
) -> None:
    credentials_file.chmod(0o644)
    spec = TargetSpec.s3(
        "s", bucket="b", endpoint="https://127.0.0.1:1", credentials_file=credentials_file
    )
    with pytest.raises(
        UsageError, match=r"may be read by others \(mode 0644\); run 'chmod 600"
    ) as caught:
        Registry.default().target_kind("s3").open(spec)
    assert SECRET_KEY not in str(caught.value)


def test_a_credentials_file_without_both_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "creds"
    path.write_text('access_key_id = "only"\n')
    path.chmod(0o600)
    spec = TargetSpec.s3("s", bucket="b", endpoint="https://127.0.0.1:1", credentials_file=path)
    with pytest.raises(UsageError, match="must hold access_key_id and secret_access_key"):
        Registry.default().target_kind("s3").open(spec)


def test_an_s3_target_describes_itself_without_credentials(credentials_file: Path) -> None:
    spec = TargetSpec.s3(
        "s",
        bucket="odeion-b",
        endpoint="https://127.0.0.1:1",
        prefix="/srv/",
        credentials_file=credentials_file,
    )
    target = Registry.default().target_kind("s3").open(spec)
    assert target.describe() == "s3://odeion-b/srv at https://127.0.0.1:1"
    assert SECRET_KEY not in repr(spec) + repr(target) + target.describe()


def _hostile(path: Path, how: str) -> None:
    if how == "not utf-8":
        path.write_bytes(b'\xff\xfe[targets.nas]\nkind = "dir"\n')
    elif how == "huge":
        path.write_bytes(b"# " + b"x" * (1024 * 1024) + b"\n")
    elif how == "endless":
        path.symlink_to("/dev/zero")
    elif how == "fifo":
        os.mkfifo(path, 0o600)
    elif how == "directory":
        path.mkdir(mode=0o700)


_HOSTILE = [
    ("not utf-8", "is not UTF-8 text"),
    ("huge", "is larger than 65536 bytes"),
    ("endless", "is not a regular file"),
    ("fifo", "is not a regular file"),
    ("directory", "is not a regular file|Is a directory"),
]


@pytest.mark.parametrize(("how", "message"), _HOSTILE)
def test_a_hostile_targets_file_is_a_usage_error_never_a_hang_or_a_traceback(
    tmp_path: Path, how: str, message: str
) -> None:
    _hostile(tmp_path / "targets.toml", how)
    archiver = Archiver(tmp_path, database_url="postgresql:///unused")
    with pytest.raises(UsageError, match=message):
        archiver.targets()


@pytest.mark.parametrize(("how", "message"), _HOSTILE)
def test_a_hostile_credentials_file_is_a_usage_error_never_a_hang_or_a_traceback(
    tmp_path: Path, how: str, message: str
) -> None:
    path = tmp_path / "creds"
    _hostile(path, how)
    if how == "endless":
        message = "may be read by others"  # /dev/zero is mode 0666: refused before it is read
    else:
        path.chmod(0o600 if how != "directory" else 0o700)
    spec = TargetSpec.s3("s", bucket="b", endpoint="https://127.0.0.1:1", credentials_file=path)
    with pytest.raises(UsageError, match=message):
        Registry.default().target_kind("s3").open(spec)


@pytest.mark.parametrize(
    "secret", ["SECRET\nKEY", "SECRET KEY", "SECRET\u00e9KEY", "SECRET\x7fKEY", "SECRET\rKEY"]
)
def test_a_credential_that_cannot_be_sent_is_refused_without_showing_it(
    tmp_path: Path, running_s3: S3Server, bucket: str, secret: str
) -> None:
    # A line break in a key made obstore panic (a BaseException) at the first request.
    path = tmp_path / "creds"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(f"access_key_id = {ACCESS_KEY!r}\nsecret_access_key = {json.dumps(secret)}\n")
    spec = s3_spec(running_s3.endpoint, bucket, path)
    archiver = Archiver(tmp_path / "data", targets=[spec], database_url="postgresql:///unused")
    with pytest.raises(UsageError, match="secret_access_key may hold only printable") as caught:
        archiver.list_target(spec.name)
    assert "SECRET" not in str(caught.value)
