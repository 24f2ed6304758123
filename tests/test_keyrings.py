"""Keyrings (kloaderd/security/keyring.py): a module built by each
release's kbuild makes a private keyring as dns_resolver, cifs and nfsv4
do, sees Linux's fields in its struct key, finds it in /proc/keys, and
gives it back through its credential at exit; a keyring left alive is
reported.  Debian's own dns_resolver and cifs (with its dependencies)
load and go clean."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from realkernel import corpus, find_module, load_then_remove, with_dependencies

SRC = Path(__file__).parent / "src" / "keyring.c"
# serial, flags (ROOT_CAN_CLEAR has no letter), usage, expiry, perm, uid, gid, type, description
LINE = r"[0-9a-f]{8} I------     1 perm 1f030000     0     0 keyring   \.kloader_test: empty"


def texts(client) -> list[str]:
    return [r["text"] for r in client.dmesg()]


@pytest.mark.slow          # builds with the real kernel's kbuild
@pytest.mark.kloader(on_problems="ignore")     # the leaked keyring is the point
@pytest.mark.parametrize("leak", [0, 1])
def test_a_private_keyring_is_made_shown_and_goes_with_its_cred(each_release, leak, kloader_build, kloader):
    kloader.finit_module(kloader_build(SRC), f"leak={leak}")
    log = texts(kloader)
    assert "keyring_test: cred keyrings 0, jit 1" in log
    assert "keyring_test: empty description -22" in log
    assert "keyring_test: revoked 1, in quota 1" in log
    assert ('keyring_test: ".kloader_test" of type keyring, serial above 2 1, usage 1, positive 1, '
            "in quota 0, perm 1f030000") in log
    shown = kloader.read_file("/proc/keys").decode().splitlines()
    mine = [line for line in shown if ".kloader" in line]         # the revoked one was put: gone
    assert len(mine) == 1 and re.fullmatch(LINE, mine[0]), shown
    kloader.delete_module("keyring")
    log = texts(kloader)
    leaked = [line for line in log if "leaked" in line]
    after = kloader.read_file("/proc/keys").decode()
    if leak:
        assert len(leaked) == 1 and re.fullmatch(
            r'keyring: leaked registration: keyring "\.kloader_test" \(serial \d+; key_put\)', leaked[0])
        assert ".kloader_test" in after            # Linux keeps it: nothing will put it
    else:
        assert not leaked
        assert ".kloader_test" not in after


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_debian_dns_resolver_makes_its_keyring_and_removes_clean(flavour):
    modules, build = corpus(flavour)
    shown = []

    def after_load(kernel):
        from kloaderd.security.keyring import keys
        shown.append(keys(kernel).proc_keys(True))
    kernel, errors = load_then_remove(build, [find_module(modules, "dns_resolver")], after_load)
    assert not errors
    assert re.fullmatch(r"[0-9a-f]{8} I------     1 perm 1f030000     0     0 keyring   \.dns_resolver: empty\n",
                        shown[0])
    log = [r.text for r in kernel.log.records()]
    assert "Key type dns_resolver registered" in log and "Key type dns_resolver unregistered" in log
    assert not [r for r in kernel.log.records() if r.problem is not None], log
    from kloaderd.security.keyring import keys
    assert keys(kernel).proc_keys(True) == ""          # the keyring went with dns_resolver's cred


@pytest.mark.parametrize("flavour", ["6.1", "6.12"])
def test_debian_cifs_makes_its_keyrings_and_removes_clean(flavour):
    """cifs (after dns_resolver, netfs, fscache and its ciphers) makes two
    keyrings of its own, .cifs_spnego and .cifs_idmap, and gives all back."""
    modules, build = corpus(flavour)
    shown = []

    def after_load(kernel):
        from kloaderd.security.keyring import keys
        shown.append(keys(kernel).proc_keys(True))
    kernel, errors = load_then_remove(build, with_dependencies(modules, "cifs"), after_load)
    assert not errors
    assert sorted(line.split()[-2] for line in shown[0].splitlines()) == [
        ".cifs_idmap:", ".cifs_spnego:", ".dns_resolver:"]
    assert not [r.text for r in kernel.log.records() if r.problem is not None]
    from kloaderd.security.keyring import keys
    assert keys(kernel).proc_keys(True) == ""
