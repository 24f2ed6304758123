"""tools/kernel_corpus.py: a corpus fetched once is found again without
asking the package lists (the suite asks for one ~30 times a run)."""

from __future__ import annotations

import pytest

from tools import kernel_corpus


def complete(root, release: str, packages: list[str]) -> None:
    (root / release).mkdir(parents=True)
    (root / release / ".complete").write_text("\n".join(packages) + "\n")


def test_a_cached_kernel_is_used_without_asking_apt(tmp_path, monkeypatch):
    monkeypatch.setenv("KLOADER_CORPUS", str(tmp_path))
    monkeypatch.delenv("KLOADER_CORPUS_ABI", raising=False)

    def no_apt(*argv, cwd=None):
        raise AssertionError(f"ran {argv} although the cache holds the kernel")
    monkeypatch.setattr(kernel_corpus, "_run", no_apt)
    for abi in ("6.1.0-9", "6.1.0-50"):
        complete(tmp_path, f"{abi}-cloud-amd64", kernel_corpus.packages(abi, "6.1"))
    complete(tmp_path, "6.12.117+deb12-cloud-amd64", kernel_corpus.packages("6.12.117+deb12", "6.12"))
    # the newest by number (50 > 9), and each flavour its own
    assert kernel_corpus.fetch("6.1") == tmp_path / "6.1.0-50-cloud-amd64"
    assert kernel_corpus.fetch("6.12") == tmp_path / "6.12.117+deb12-cloud-amd64"


def test_a_cache_without_the_extras_asked_for_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("KLOADER_CORPUS", str(tmp_path))
    monkeypatch.delenv("KLOADER_CORPUS_ABI", raising=False)
    complete(tmp_path, "6.1.0-50-cloud-amd64", kernel_corpus.packages("6.1.0-50", "6.1"))
    asked = []

    def apt(*argv, cwd=None):
        asked.append(argv[:2])
        raise kernel_corpus.Unavailable("offline")
    monkeypatch.setattr(kernel_corpus, "_run", apt)
    monkeypatch.setattr(kernel_corpus.shutil, "which", lambda name: f"/usr/bin/{name}")
    with pytest.raises(kernel_corpus.Unavailable):
        kernel_corpus.fetch("6.1", with_kmod=True)        # kmod was not unpacked there
    assert asked == [("apt-cache", "pkgnames")]
