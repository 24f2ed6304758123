"""The kernel's options: every bound and choice `kloaderd --help` shows,
with its unit and the least value that makes sense.

Their own file so that the kernel's internal services (`internal.py`), which
read them, need not import the kernel that serves them (`kernel.py`
re-exports `KernelOptions`, where callers have always found it).
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from typing import Any


def option(default: Any, help: str, metavar: str = "", *, at_least: float | None = None,
           above: float | None = None) -> Any:
    """A kernel option: its default, what it means in its unit (`kloaderd --help`
    shows it) and the least value that makes sense (checked on construction)."""
    return field(default=default, metadata={"help": help, "metavar": metavar,
                                            "at_least": at_least, "above": above})


@dataclass
class KernelOptions:
    watchdog: float = option(5.0, "CPU seconds a task may run without sleeping before the soft-lockup "
                                  "watchdog oopses it", "SECONDS", above=0)
    try_get_coming: bool = option(False, "try_module_get admits a module still in its init (COMING), "
                                         "as modern Linux does")
    exporter_wait: float = option(30.0, "seconds a load waits for a COMING module that exports what it "
                                        "needs (0: do not wait)", "SECONDS", at_least=0)
    max_image_size: int = option(64 << 20, "bytes: the largest module image accepted; larger is EFBIG",
                                 "BYTES", at_least=1)
    log_capacity: int = option(1 << 20, "bytes of memory the kernel log ring may hold (text and bookkeeping)", "BYTES", at_least=1)
    kernel: str = option("", "a real kernel to emulate: its build tree DIR or its RELEASE "
                             "(\"\": kloader's own kernel)", "DIR|RELEASE")
    vermagic: str = option("", "the vermagic string a module must carry unless forced "
                               "(\"\": the emulated kernel's own)", "STR")
    max_modules: int = option(8192, "modules loaded at once; more is ENOSPC", "N", at_least=1)
    max_module_memory: int = option(1 << 30, "bytes of module core and init images in all; more is ENOMEM",
                                    "BYTES", at_least=1)
    module_heap_limit: int = option(256 << 20, "kmalloc bytes one module may hold; beyond, kmalloc "
                                               "returns NULL", "BYTES", at_least=0)
    heap_limit: int = option(2 << 30, "kmalloc bytes in all; beyond, kmalloc returns NULL", "BYTES", at_least=0)
    max_connections: int = option(1024, "daemon: clients connected at once; more are told EMFILE",
                                  "N", at_least=1)
    max_connections_per_uid: int = option(128, "daemon: clients of one uid connected at once; more are "
                                                "told EMFILE", "N", at_least=1)
    idle_timeout: float = option(600.0, "daemon: seconds after which a silent client with no request "
                                        "in flight and no reference held is closed (0: never)",
                                 "SECONDS", at_least=0)
    exit_grace: float = option(5.0, "seconds shutdown lets module exits still running finish "
                                    "before it interrupts them (and logs which)", "SECONDS", at_least=0)
    max_open_files: int = option(1024, "descriptors one client may hold open; more is EMFILE",
                                 "N", at_least=1)
    max_io: int = option(1 << 20, "bytes one read, write or ioctl buffer may carry; more is EINVAL",
                         "BYTES", at_least=1)
    module_quarantine: int = option(256 << 20, "bytes of freed module address space held back from "
                                               "reuse, so stale pointers into it fault", "BYTES",
                                    at_least=0)
    module_dir: str = option("", "the module tree modprobe and request_module() read "
                                 "(lib/modules/RELEASE; \"\": /lib/modules/RELEASE of the emulated kernel)", "DIR")
    modprobe_config: str = option("", "modprobe.d files or directories, ':'-separated "
                                      "(\"\": modprobe's defaults, /etc/modprobe.d ...)", "PATH")
    kmod_concurrent_max: int = option(50, "request_module() calls running at once, as Linux's "
                                          "kmod_concurrent_max", "N", at_least=1)
    kmod_busy_timeout: float = option(5.0, "seconds a request_module() waits for a free slot before "
                                           "-ETIME", "SECONDS", at_least=0)

    def __post_init__(self) -> None:
        for f in fields(self):
            problem = option_problem(f, getattr(self, f.name))
            if problem:
                raise ValueError(f"KernelOptions.{f.name}: {problem}")


def option_problem(f: Field[Any], value: Any) -> str | None:
    """Why `value` makes no sense for the option `f`, or None."""
    at_least, above = f.metadata.get("at_least"), f.metadata.get("above")
    if at_least is not None and value < at_least:
        return f"must be at least {at_least}, not {value}"
    if above is not None and value <= above:
        return f"must be more than {above}, not {value}"
    return None
