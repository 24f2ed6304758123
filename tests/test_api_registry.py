"""The kernel API registry: one export per name, re-imports welcome."""

import importlib

import pytest

from kloaderd.kernel import api


def test_a_second_definition_of_an_exported_name_is_refused():
    api.load_all()
    with pytest.raises(ValueError, match="kernel symbol _printk exported twice"):
        api.export("_printk", "int _printk(const char *fmt, ...)", nargs=1)(lambda ctx, fmt: 0)
    with pytest.raises(ValueError, match="kernel symbol jiffies exported twice"):
        api.export_object("jiffies", "unsigned long jiffies", 4)


def test_reimporting_an_implementation_module_keeps_one_export_each():
    api.load_all()
    before = dict(api.FUNCTIONS), dict(api.OBJECTS)
    importlib.reload(importlib.import_module("kloaderd.kernel.api.params"))
    importlib.reload(importlib.import_module("kloaderd.kernel.api.slab"))
    assert (set(api.FUNCTIONS), set(api.OBJECTS)) == (set(before[0]), set(before[1]))
