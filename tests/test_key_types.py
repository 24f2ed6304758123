"""Key types (kloaderd/security/keys.py) through a client: a module built
by each release's kbuild registers one as libceph and dns_resolver do; a
name the kernel or a module already has is -EEXIST, Linux's notices are
logged, and a type left registered is reported when the module goes."""

from __future__ import annotations

from pathlib import Path

import pytest


SRC = Path(__file__).parent / "src" / "keytype.c"



def texts(client) -> list[str]:
    return [r["text"] for r in client.dmesg()]


@pytest.mark.slow          # builds with the real kernel's kbuild
@pytest.mark.kloader(on_problems="ignore")     # the leaked type is the point
@pytest.mark.parametrize("leak", [0, 1])
def test_a_key_type_registers_once_and_goes_or_is_reported(each_release, leak, kloader_build, kloader):
    kloader.finit_module(kloader_build(SRC), f"leak={leak}")
    assert "keytype: 0, user -17, again -17" in texts(kloader)
    assert "Key type kloader_test registered" in texts(kloader)
    assert [r["what"] for r in kloader.module("keytype")["registrations"]] == ['key type "kloader_test"']
    kloader.delete_module("keytype")
    log = texts(kloader)
    if leak:
        assert 'keytype: leaked registration: key type "kloader_test"' in log
        assert "Key type kloader_test unregistered" not in log
    else:
        assert "Key type kloader_test unregistered" in log
        assert not any("leaked" in line for line in log)
    kloader.finit_module(kloader_build(SRC))        # the name is free again either way
    assert texts(kloader).count("keytype: 0, user -17, again -17") == 2
