"""A module's appended signature as modinfo shows it: sig_id, signer, sig_key, sig_hashalgo, signature.

A signed module ends in the signature data, a 12-byte `struct
module_signature` and "~Module signature appended~\\n" (scripts/sign-file.c).
Distribution kernels sign with a PKCS#7 message (id_type 2), from which kmod
takes the first signer's issuer common name, certificate serial number,
digest algorithm and encrypted digest; older id types carry the signer and
key id in plain bytes before the signature.  The PKCS#7 message is read here
with a minimal DER walker: only the path to those four fields.
"""

from __future__ import annotations

import struct

from kloaderd.elf.image import MODULE_SIG_STRING
MODULE_SIGNATURE = struct.Struct(">BBBBB3xI")   # algo, hash, id_type, signer_len, key_id_len, sig_len
PKEY_ALGO_LAST = 2                              # DSA, RSA
HASH_ALGOS = ("md4", "md5", "sha1", "rmd160", "sha256", "sha384", "sha512", "sha224", "sm3")
ID_TYPES = ("PGP", "X509", "PKCS#7")
PKEY_ID_PKCS7 = 2
# Digest algorithm OIDs (DER content bytes) by OpenSSL's short name, which kmod prints.
DIGEST_OIDS = {
    bytes.fromhex("2a864886f70d0204"): "md4", bytes.fromhex("2a864886f70d0205"): "md5",
    bytes.fromhex("2b0e03021a"): "sha1", bytes.fromhex("2b24030201"): "ripemd160",
    bytes.fromhex("608648016503040201"): "sha256", bytes.fromhex("608648016503040202"): "sha384",
    bytes.fromhex("608648016503040203"): "sha512", bytes.fromhex("608648016503040204"): "sha224",
    bytes.fromhex("2a811ccf55018311"): "sm3",
}
COMMON_NAME = bytes.fromhex("550403")            # 2.5.4.3
HEX_PER_LINE = 20


class _Bad(Exception):
    """Not the DER this walker expects."""


def _element(data: bytes, at: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at `at`."""
    if at + 2 > end:
        raise _Bad
    tag, size = data[at], data[at + 1]
    at += 2
    if size & 0x80:
        count = size & 0x7F
        if not 0 < count <= 4 or at + count > end:
            raise _Bad
        size = int.from_bytes(data[at:at + count], "big")
        at += count
    if at + size > end:
        raise _Bad
    return tag, at, at + size


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    found = []
    while start < end:
        element = _element(data, start, end)
        found.append(element)
        start = element[2]
    return found


def _oid_text(oid: bytes) -> str:
    """Dotted form, for a digest OpenSSL would name and this table does not."""
    first, parts, value = oid[0], [], 0
    for byte in oid[1:]:
        value = value << 7 | byte & 0x7F
        if not byte & 0x80:
            parts.append(str(value))
            value = 0
    return ".".join([str(first // 40), str(first % 40), *parts])


def _pkcs7(data: bytes) -> tuple[str, bytes, str, bytes]:
    """(signer, key id, digest name, signature) of the first SignerInfo."""
    tag, s, e = _element(data, 0, len(data))                  # ContentInfo
    content = [c for c in _children(data, s, e) if c[0] == 0xA0]
    if tag != 0x30 or not content:
        raise _Bad
    (tag, s, e), = _children(data, content[0][1], content[0][2])  # SignedData
    signer_infos = _children(data, s, e)[-1]
    if tag != 0x30 or signer_infos[0] != 0x31:
        raise _Bad
    first = _children(data, signer_infos[1], signer_infos[2])[0]
    fields = _children(data, first[1], first[2])
    issuer_and_serial, digest_alg = fields[1], fields[2]
    digest = [f for f in fields[3:] if f[0] == 0x04]
    if issuer_and_serial[0] != 0x30 or not digest:
        raise _Bad
    issuer, serial = _children(data, issuer_and_serial[1], issuer_and_serial[2])[:2]
    signer = ""
    for rdn in _children(data, issuer[1], issuer[2]):
        for attribute in _children(data, rdn[1], rdn[2]):
            oid, value = _children(data, attribute[1], attribute[2])[:2]
            if data[oid[1]:oid[2]] == COMMON_NAME:
                signer = data[value[1]:value[2]].decode("utf-8", "replace")
    key_id = data[serial[1]:serial[2]].lstrip(b"\0")           # BN_bn2bin: no leading zeros
    oid = _children(data, digest_alg[1], digest_alg[2])[0]
    oid_bytes = data[oid[1]:oid[2]]
    name = DIGEST_OIDS.get(oid_bytes) or _oid_text(oid_bytes)
    return signer, key_id, name, data[digest[0][1]:digest[0][2]]


def hex_bytes(data: bytes) -> str:
    """kmod's `01:12:DE:AD`, a new line (two tabs) after every 20 bytes."""
    out = []
    for i, byte in enumerate(data):
        out.append(f"{byte:02X}")
        if i < len(data) - 1:
            out.append(":")
            if (i + 1) % HEX_PER_LINE == 0:
                out.append("\n\t\t")
    return "".join(out)


def signature_pairs(image: bytes) -> list[tuple[str, str]]:
    """The sig_* keys modinfo appends to a signed module's .modinfo, or none."""
    if not image.endswith(MODULE_SIG_STRING):
        return []
    size = len(image) - len(MODULE_SIG_STRING)
    if size < MODULE_SIGNATURE.size:
        return []
    size -= MODULE_SIGNATURE.size
    algo, hash_algo, id_type, signer_len, key_id_len, sig_len = MODULE_SIGNATURE.unpack_from(image, size)
    if algo >= PKEY_ALGO_LAST or hash_algo >= len(HASH_ALGOS) or id_type >= len(ID_TYPES):
        return []
    if sig_len == 0 or size < sig_len + signer_len + key_id_len:
        return []
    sig = image[size - sig_len:size]
    if id_type == PKEY_ID_PKCS7:
        try:
            signer, key_id, hash_name, sig = _pkcs7(sig)
        except (_Bad, IndexError, ValueError):
            signer, key_id, hash_name, sig = "", b"", "unknown", b""   # kmod's fallback
    else:
        key_end = size - sig_len
        key_id = image[key_end - key_id_len:key_end]
        signer = image[key_end - key_id_len - signer_len:key_end - key_id_len].decode("utf-8", "replace")
        hash_name = HASH_ALGOS[hash_algo]
    return [("sig_id", ID_TYPES[id_type]), ("signer", signer), ("sig_key", hex_bytes(key_id)),
            ("sig_hashalgo", hash_name), ("signature", hex_bytes(sig))]
