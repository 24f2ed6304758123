"""Fault injection, as Linux's fault-injection framework (lib/fault-inject.c,
Documentation/fault-injection/fault-injection.rst), and functions users provide.

* `failslab`: kmalloc and friends return NULL when the attribute says so
  (`mm/failslab.c`).  Only allocations made for a module fail — the
  kernel's own bookkeeping never does here, where Linux may fail it too.
* `fail_function(name, retval)`: the named kernel function returns
  `retval` without running, as `/sys/kernel/debug/fail_function/inject`
  does for functions marked ALLOW_ERROR_INJECTION (kloader allows any).

A `FaultAttr` has Linux's knobs: `probability` (percent), `interval`,
`times` (-1: unlimited), `space` (bytes that pass first), `verbose`; and
`nth`, the per-task `/proc/self/fail-nth` (the Nth call fails), kept per
attribute here because kloader tasks are not processes a test can name.
Each injected failure is logged as Linux logs it ("FAULT_INJECTION:
forcing a failure."), so the error path it starts reads in the kernel log,
and any memory that path leaks is reported when the module is freed.

`Kernel.provide(name, fn)` defines or overrides a kernel function for one
kernel (so one daemon, one test): `fn(ctx, *args)` as the implementations in
`kloaderd/kernel/api`, one int per argument.
"""

from __future__ import annotations

import inspect
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from . import api
from .printk import KERN_NOTICE
from .symbols import KernelSymbol

if TYPE_CHECKING:
    from .cpu import Machine
    from .printk import LogBuffer
    from .symbols import SymbolTable


@dataclass
class FaultAttr:
    """struct fault_attr: when should_fail() says yes."""
    name: str = "failslab"
    probability: int = 100
    interval: int = 1
    times: int = 1
    space: int = 0
    verbose: int = 1
    nth: int = 0                   # fail the nth call from now (1 = the next); 0: not used
    count: int = 0                 # calls seen, for `interval`
    failures: int = 0              # how many it forced
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        # fail-nth alone decides, as with failslab's default probability of 0.
        self._by_nth = self.nth > 0

    def should_fail(self, size: int = 0) -> bool:
        """should_fail_ex(), in Linux's order of tests."""
        if self._by_nth:
            if not self.nth:
                return False
            self.nth -= 1
            if self.nth:
                return False
        else:
            if self.probability == 0 or self.times == 0:
                return False
            if self.space > size:
                self.space -= size
                return False
            if self.interval > 1:
                self.count += 1
                if self.count % self.interval:
                    return False
            if self.probability <= self.rng.randrange(100):
                return False
            if self.times != -1:
                self.times -= 1
        self.failures += 1
        return True

    def dump(self, log: "LogBuffer", owner: str | None) -> None:
        """fail_dump(): what Linux prints for each forced failure."""
        if self.verbose > 0:
            log.emit(KERN_NOTICE, "FAULT_INJECTION: forcing a failure.", owner)
            log.emit(KERN_NOTICE, f"name {self.name}, interval {self.interval}, "
                     f"probability {self.probability}, space {self.space}, "
                     f"times {self.times}", owner)


def _nargs(fn: Callable[..., Any]) -> int:
    """Integer arguments after `ctx`, from the Python signature."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        raise TypeError(f"{fn!r}: give nargs= for a function taking *args")
    return len(params)


class Faults:
    """One kernel's injected faults and provided functions."""

    def __init__(self, machine: "Machine", symbols: "SymbolTable", log: "LogBuffer") -> None:
        self.machine, self.symbols, self.log = machine, symbols, log
        self.slab: FaultAttr | None = None

    def provide(self, name: str, fn: Callable[..., Any], *, nargs: int | None = None,
                gpl: bool = False) -> None:
        count = _nargs(fn) if nargs is None else nargs
        self.machine.provide(api.KernelFunction(name, fn, count, gpl, f"provided {name}"))
        if self.symbols.get(name) is None:
            self.symbols.add(KernelSymbol(name, self.machine.kernel_symbols()[name], gpl, None))

    def failslab(self, **attr: Any) -> FaultAttr:
        """Make module allocations fail as `attr` says (FaultAttr's fields)."""
        self.slab = FaultAttr(name="failslab", **attr)
        return self.slab

    def should_failslab(self, size: int, owner: str | None) -> bool:
        if self.slab is None or owner is None or not self.slab.should_fail(size):
            return False
        self.slab.dump(self.log, owner)
        return True

    def fail_function(self, name: str, retval: int, **attr: Any) -> FaultAttr:
        """The kernel function `name` returns `retval` when `attr` says so."""
        original = self.machine.function(name)
        if original is None:
            raise KeyError(f"{name} is not a kernel function")
        fault = FaultAttr(name="fail_function", **attr)
        log = self.log

        def injected(ctx: Any, *args: int) -> Any:
            if fault.should_fail():
                fault.dump(log, ctx.module.name if ctx.module is not None else None)
                return retval
            return original.impl(ctx, *args)

        self.machine.provide(api.KernelFunction(name, injected, original.nargs, original.gpl,
                                                  original.proto, original.variadic,
                                                  original.layouts, original.structs))
        return fault
