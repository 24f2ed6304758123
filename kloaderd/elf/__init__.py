"""ELF relocatable objects as Linux's module loader reads them (see image.py)."""

from kloaderd.elf.image import Export, Image, Param, RelaSection, Section, Symbol, parse

__all__ = ["Export", "Image", "Param", "RelaSection", "Section", "Symbol", "parse"]
