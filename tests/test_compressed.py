"""Compressed modules: .ko.gz, .ko.xz and .ko.zst through finit_module's
MODULE_INIT_COMPRESSED_FILE, kinsmod and kmodinfo, as Linux
(CONFIG_MODULE_DECOMPRESS) and kmod take them."""

from __future__ import annotations

import errno
import gzip
import lzma
import subprocess
from pathlib import Path

import pytest
import zstandard

from kloader_client import Client
from kloaderd import embed
from kloaderd.errors import KernelError
from kloaderd.decompress import compression_of, module_decompress, zstd_frame_end
from test_kmodinfo import kmod_modinfo
from test_server import FIXTURES, command

HELLO = (FIXTURES / "hello.ko").read_bytes()
COMPRESSORS = {
    "gz": lambda data: gzip.compress(data),
    "xz": lambda data: lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32),
    "zst": lambda data: zstandard.ZstdCompressor().compress(data),
}


@pytest.fixture(params=sorted(COMPRESSORS))
def suffix(request) -> str:
    return request.param


def compressed(tmp_path: Path, suffix: str, data: bytes = HELLO, name: str = "hello") -> Path:
    path = tmp_path / f"{name}.ko.{suffix}"
    path.write_bytes(COMPRESSORS[suffix](data))
    return path


def test_each_format_by_its_magic(suffix):
    packed = COMPRESSORS[suffix](HELLO)
    assert compression_of(packed) == {"gz": "gzip", "xz": "xz", "zst": "zstd"}[suffix]
    assert compression_of(HELLO) is None
    assert module_decompress(packed, len(HELLO)) == HELLO


def test_corrupt_truncated_and_oversized_streams(suffix):
    packed = COMPRESSORS[suffix](HELLO * 4)
    for bad in (packed[: len(packed) // 2], packed[:-8]):
        with pytest.raises(KernelError) as corrupt:
            module_decompress(bad, 1 << 20)
        assert corrupt.value.errno == errno.EINVAL and "is corrupt" in corrupt.value.message
    with pytest.raises(KernelError) as big:
        module_decompress(packed, len(HELLO))          # the bound, not the whole inflation
    assert big.value.errno == errno.EFBIG and "max_image_size" in big.value.message
    with pytest.raises(KernelError) as plain:
        module_decompress(HELLO, 1 << 20)
    assert plain.value.errno == errno.EINVAL


@pytest.mark.parametrize("checksum", [False, True], ids=["plain", "checksummed"])
def test_a_zstd_frame_is_whole_only_up_to_its_last_block_and_checksum(checksum):
    """A bounded zstd read does not say whether the frame ended: its block
    headers do.  Cut anywhere short of the frame's end, the file is
    corrupt."""
    packed = zstandard.ZstdCompressor(write_checksum=checksum).compress(HELLO * 40)
    assert zstd_frame_end(packed) == len(packed)
    for cut in (len(packed) - 1, len(packed) - 4, len(packed) // 3, 12):
        with pytest.raises(KernelError) as corrupt:
            module_decompress(packed[:cut], 1 << 20)
        assert corrupt.value.errno == errno.EINVAL
    assert module_decompress(packed, 1 << 20) == HELLO * 40


def test_finit_module_decompresses_with_the_flag_only(tmp_path, suffix):
    path = compressed(tmp_path, suffix)
    with embed.run_in_thread() as daemon, Client(daemon.socket_path) as client:
        with pytest.raises(OSError) as plain:
            client.finit_module(path)                     # a compressed file is no ELF
        assert plain.value.errno == errno.ENOEXEC
        assert client.finit_module(path, compressed=True) == "hello"
        client.delete_module("hello")
        with pytest.raises(OSError) as not_finit:
            client._call("init_module", image=path.read_bytes(), params="", flags=4)
        assert not_finit.value.errno == errno.EINVAL
        log = [r["text"] for r in client.dmesg()]
    assert "Hello, world" in log and "Goodbye, world" in log
    assert any("ELF" in line for line in log)             # the refusal is in the log too


def test_a_compression_bomb_stops_at_the_image_limit(tmp_path):
    bomb = tmp_path / "bomb.ko.zst"
    bomb.write_bytes(zstandard.ZstdCompressor().compress(bytes(4 << 20)))
    with embed.run_in_thread(max_image_size=1 << 20) as daemon, Client(daemon.socket_path) as client:
        with pytest.raises(OSError) as big:
            client.finit_module(bomb, compressed=True)
        assert big.value.errno == errno.EFBIG
        assert any("1048576 byte image limit" in r["text"] for r in client.dmesg())


def test_kinsmod_and_kmodinfo_take_compressed_files(tmp_path, suffix):
    path = compressed(tmp_path, suffix)
    with embed.run_in_thread() as daemon:
        done = subprocess.run([command("kinsmod"), "--socket", daemon.socket_path, str(path)],
                              capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stderr) == (0, "")
        with Client(daemon.socket_path) as client:
            assert client.module("hello")["state"] == "live"
    info = subprocess.run([command("kmodinfo"), "-F", "vermagic", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert info.stdout == "6.6.0-kloader SMP preempt mod_unload modversions \n"


def test_kmodinfo_of_compressed_files_as_kmods_modinfo(tmp_path):
    """The outside oracle: kmod's modinfo reads the same files.  Debian's
    kmod is built with xz and zstd but without zlib, so .gz is not compared."""
    theirs_argv = kmod_modinfo()
    params = (FIXTURES / "params.ko").read_bytes()
    paths = [str(compressed(tmp_path, s, params, f"params_{s}")) for s in ("xz", "zst")]
    for options in ([], ["-p"], ["-F", "vermagic"], ["-F", "name"]):
        ours = subprocess.run([command("kmodinfo"), *options, *paths], capture_output=True, text=True)
        theirs = subprocess.run([*theirs_argv, *options, *paths], capture_output=True, text=True)
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), options
