"""The checks of ``trader-backup import`` on hand-made bytes: SQL dump, filter, RDB file."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest

from trader_api.backup.compose import (
    check_name,
    check_rdb,
    check_sql_gz,
    check_sql_lines,
    loadable_lines,
    rdb_crc64,
)
from trader_api.backup.errors import BackupError

HEADER = [
    b"--\n",
    b"-- PostgreSQL database dump\n",
    b"--\n",
    b"\n",
    b"\\restrict abc\n",
    b"\n",
    b"-- Dumped from database version 16.4 (Debian 16.4-1.pgdg120+1)\n",
    b"-- Dumped by pg_dump version 16.10\n",
    b"\n",
]
TRAILER = [
    b"--\n",
    b"-- PostgreSQL database dump complete\n",
    b"--\n",
    b"\n",
    b"\\unrestrict abc\n",
    b"\n",
]
BODY = [
    b"CREATE EXTENSION IF NOT EXISTS timescaledb WITH SCHEMA public;\n",
    b"COMMENT ON EXTENSION timescaledb IS 'time series';\n",
    b"CREATE TABLE public.orders (id text);\n",
    b"ALTER TABLE public.orders OWNER TO trader;\n",
    b"ALTER SEQUENCE public.fills_id_seq OWNER TO trader;\n",
    b"COPY public.orders (id) FROM stdin;\n",
    b"ALTER TABLE public.orders OWNER TO trader;\n",  # data, not a statement
    b"GRANT ALL\n",
    b"\\.\n",
    b"GRANT SELECT ON TABLE public.orders TO reader;\n",
    b"REVOKE ALL ON SCHEMA public FROM PUBLIC;\n",
]


def test_a_complete_dump_is_described() -> None:
    dump = check_sql_lines(iter(HEADER + BODY + TRAILER), name="db.sql")

    assert dump.server_version == "16.4"
    assert dump.pg_dump_version == "16.10"
    assert dump.timescaledb is True


def test_a_dump_without_its_trailer_is_incomplete() -> None:
    with pytest.raises(BackupError, match="incomplete pg_dump"):
        check_sql_lines(iter(HEADER + BODY), name="db.sql")


def test_sql_that_pg_dump_did_not_write_is_refused() -> None:
    with pytest.raises(BackupError, match="not a pg_dump plain-format dump"):
        check_sql_lines(iter([b"CREATE TABLE t (id int);\n", *TRAILER]), name="db.sql")


def test_ownership_and_privileges_are_left_out_but_table_data_is_not() -> None:
    kept = list(loadable_lines(iter(BODY)))

    assert kept == [
        b"CREATE EXTENSION IF NOT EXISTS timescaledb WITH SCHEMA public;\n",
        b"CREATE TABLE public.orders (id text);\n",
        b"COPY public.orders (id) FROM stdin;\n",
        b"ALTER TABLE public.orders OWNER TO trader;\n",
        b"GRANT ALL\n",
        b"\\.\n",
    ]


def test_a_gzip_stream_cut_short_is_truncated(tmp_path: Path) -> None:
    whole = gzip.compress(b"".join(HEADER + BODY + TRAILER) * 50)
    cut = tmp_path / "db.sql.gz"
    cut.write_bytes(whole[:-20])

    with pytest.raises(BackupError, match="truncated"):
        check_sql_gz(cut)


def test_redis_crc64_matches_redis_own_check_value() -> None:
    # src/crc64.c: crc64(0, "123456789", 9) == 0xe9c6d914c4b8d9ca
    assert rdb_crc64(b"123456789") == 0xE9C6D914C4B8D9CA


def _rdb(body: bytes, *, version: int = 10, checksum: bool = True) -> bytes:
    data = b"REDIS%04d" % version + body + b"\xff"
    return data + struct.pack("<Q", rdb_crc64(data) if checksum else 0)


# aux redis-ver "7.2.4", aux ctime as a 32-bit integer string, then an empty db.
AUX = b"\xfa\x09redis-ver\x057.2.4" + b"\xfa\x05ctime\xc2" + struct.pack("<i", 1700000000)


def test_a_whole_rdb_is_described(tmp_path: Path) -> None:
    path = tmp_path / "dump.rdb"
    path.write_bytes(_rdb(AUX + b"\xfe\x00\x00\x01abc\x01x"))

    rdb = check_rdb(path)

    assert (rdb.version, rdb.checksum, rdb.redis_version, rdb.ctime) == (
        10,
        True,
        "7.2.4",
        1700000000,
    )


def test_an_rdb_saved_without_checksum_is_accepted_as_unchecked(tmp_path: Path) -> None:
    path = tmp_path / "dump.rdb"
    path.write_bytes(_rdb(AUX, checksum=False))

    assert check_rdb(path).checksum is False


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (_rdb(AUX)[:-1], "truncated or corrupt"),
        (_rdb(AUX).replace(b"7.2.4", b"7.2.5"), "CRC-64"),
        (_rdb(AUX, version=13), "RDB version 13"),
        (b"PK\x03\x04" + _rdb(AUX)[4:], "not a Redis RDB file"),
    ],
    ids=["cut", "changed", "too-new", "zip"],
)
def test_a_broken_rdb_is_refused(tmp_path: Path, data: bytes, why: str) -> None:
    path = tmp_path / "dump.rdb"
    path.write_bytes(data)

    with pytest.raises(BackupError, match=why):
        check_rdb(path)


@pytest.mark.parametrize("name", ["../up", "a/b", ".hidden", "", "x" * 300, "a..b"])
def test_a_backup_name_stays_one_folder(name: str) -> None:
    with pytest.raises(BackupError, match="invalid backup name"):
        check_name(name)


def test_a_backup_name_may_be_the_default_or_a_plain_word() -> None:
    check_name("demo-20261203T172902059115Z")
    check_name("compose-seed_2025.01.28")


@pytest.mark.parametrize("command", [b"\\! touch /tmp/owned\n", b"\\connect postgres\n"])
def test_a_psql_command_pg_dump_does_not_write_is_refused(command: bytes) -> None:
    with pytest.raises(BackupError, match="is not something pg_dump writes"):
        check_sql_lines(iter([*HEADER, command, *BODY, *TRAILER]), name="db.sql")


def test_table_data_that_looks_like_a_psql_command_is_only_data() -> None:
    data = [b"COPY public.orders (id) FROM stdin;\n", b"\\! not a command\n", b"\\.\n"]

    dump = check_sql_lines(iter([*HEADER, *data, *TRAILER]), name="db.sql")

    assert dump.pg_dump_version == "16.10"
