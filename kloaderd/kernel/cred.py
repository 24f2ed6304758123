"""kernel/cred.c: task credentials (`struct cred`), the kernel's and the
ones modules prepare, override with and drop.

Every emulated task is a kernel thread: its credentials, until it changes
them, are `init_cred`'s — root (every uid and gid 0), `init_user_ns`, the
full capability set (`CAP_FULL_SET` as permitted, effective and bounding;
none inheritable or ambient), `SECUREBITS_DEFAULT`.  `init_cred` is a
`struct cred` in guest memory at the running kernel's offsets, made at
boot and owned by the kernel; a task's `cred` and `real_cred` are guest
addresses of such structures.

A cred that `prepare_kernel_cred()` or `prepare_creds()` makes is
kmalloc'd for the calling module (Linux's `cred_jar`), a copy of the
original with `usage` 1.  `get_cred()`/`put_cred()` are the module's
inlines on `usage` (atomic_t in 6.1 as released, atomic_long_t since
the 2023 fix and in Debian's 6.1.0-50: measured, not assumed); the last
put calls `__put_cred()`, which frees it (at once: no RCU grace period
is needed with no reader).  So a cred a module never puts is still its
allocation when it is freed, and the slab's leak report names it
(`NAME: leaked N bytes in M allocations`).

Releases: in 6.1 `prepare_kernel_cred(NULL)` means `init_cred`; from 6.2
on it is refused with a WARN and NULL (callers pass `&init_task`).
A task pointer is `init_task` or a live emulated task (`current`).

Keyrings (CONFIG_KEYS): `prepare_kernel_cred()` gives a cred none, and
`jit_keyring` KEY_REQKEY_DEFL_THREAD_KEYRING, as Linux; `prepare_creds()`
takes a reference on each keyring the copy holds; a freed cred puts its
session, process and thread keyrings and `request_key_auth`
(security/keyring.py), so a keyring a module made and handed to its
cred's `thread_keyring` (dns_resolver, cifs, nfsv4) goes with it.

Where kloader differs: `user`, `group_info` and `ucounts` stay NULL (no
user_struct or group list is emulated), and there is no LSM blob
(`security` NULL).  Each task's `cred` and `real_cred` are kept by
the kernel and written to its task_struct (kernel/task_struct.py), so a
module's inline `current_cred()`, `current_uid()` and `current_user_ns()`
read them through `current`.
The WARN and the BUG_ON()s name kernel/cred.c without a line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .api import at_boot, export
from .layouts import constants, struct
from .oops import KernelBug, NotEmulated
from .panic import warn_once
from .task_struct import task_structs

if TYPE_CHECKING:
    from .kernel import Kernel
    from .sched import Task

CRED = struct("struct cred", "linux/cred.h", "usage", "uid", "gid", "suid", "sgid", "euid", "egid",
              "fsuid", "fsgid", "securebits", "cap_inheritable", "cap_permitted", "cap_effective",
              "cap_bset", "cap_ambient", "user_ns", sized=("usage",),
              optional=("session_keyring", "process_keyring", "thread_keyring", "request_key_auth",
                        "jit_keyring"))
# CONFIG_KEYS's members: the keyrings a cred holds a reference on each of.
KEYRINGS = ("session_keyring", "process_keyring", "thread_keyring", "request_key_auth")
KEY_REQKEY_DEFL_THREAD_KEYRING = 1
CAPABILITY = constants("capabilities", "linux/capability.h", "CAP_LAST_CAP")
STRUCTS = (CRED, CAPABILITY)

_IDS = ("uid", "gid", "suid", "sgid", "euid", "egid", "fsuid", "fsgid")
# init_cred's count: Linux boots with ATOMIC_INIT(4) (init_task's cred and
# real_cred, and two more); it is never freed.
INIT_CRED_USAGE = 4
BUG_AT = "kernel/cred.c"             # the BUG_ON()s' file; kloader does not give their lines


class Creds:
    """One kernel's credentials: `init_cred` and what each task runs with."""

    def __init__(self, kernel: "Kernel") -> None:
        self.kernel = kernel
        self.init_cred = 0                 # made at boot where the layouts are known

    def usable(self) -> bool:
        return self.kernel.layouts.has(CRED) and self.kernel.layouts.has(CAPABILITY)

    def init(self) -> int:
        """The guest address of init_cred."""
        if not self.init_cred:
            self.init_cred = self._make_init_cred()
        return self.init_cred

    def _make_init_cred(self) -> int:
        layout = self.kernel.layouts[CRED]
        mem = self.kernel.machine.mem
        cred = self.kernel.slab.alloc(layout.size, None, zero=True)
        self.set_usage(cred, INIT_CRED_USAGE)
        for member in _IDS:
            mem.write_u32(cred + getattr(layout, member), 0)          # GLOBAL_ROOT_UID/GID
        full = (1 << (self.kernel.layouts[CAPABILITY].CAP_LAST_CAP + 1)) - 1
        for member in ("cap_permitted", "cap_effective", "cap_bset"):
            mem.write_u64(cred + getattr(layout, member), full)       # CAP_FULL_SET
        init_user_ns = self.kernel.symbols.get("init_user_ns")
        mem.write_u64(cred + layout.user_ns, init_user_ns.address if init_user_ns else 0)
        return cred

    # -- usage ------------------------------------------------------------------

    def usage(self, cred: int) -> int:
        layout = self.kernel.layouts[CRED]
        width = layout.sizeof_usage
        raw = self.kernel.machine.mem.read(cred + layout.usage, width)
        return int.from_bytes(raw, "little", signed=True)

    def set_usage(self, cred: int, value: int) -> None:
        layout = self.kernel.layouts[CRED]
        width = layout.sizeof_usage
        self.kernel.machine.mem.write(cred + layout.usage, value.to_bytes(width, "little", signed=True))

    def get(self, cred: int) -> int:
        """get_cred()."""
        self.set_usage(cred, self.usage(cred) + 1)
        return cred

    def put(self, ctx: Any, cred: int) -> None:
        """put_cred(): the last reference frees it."""
        left = self.usage(cred) - 1
        self.set_usage(cred, left)
        if left == 0:
            self.free(ctx, cred)

    def free(self, ctx: Any, cred: int) -> None:
        """__put_cred() once the count is 0: BUG if anything still uses it."""
        usage = self.usage(cred)
        if usage != 0:
            raise KernelBug(BUG_AT)                       # BUG_ON(atomic_long_read(&cred->usage) != 0)
        task = ctx.task
        if cred == self.init_cred or task is not None and cred in (task.cred, task.real_cred):
            raise KernelBug(BUG_AT)                       # BUG_ON(cred == current->cred)
        keyrings = self.keyrings(cred)
        self.kernel.slab.free(cred, getattr(ctx.module, "name", None))
        if any(keyrings):
            from ..security.keyring import put_cred_keyrings
            put_cred_keyrings(ctx, keyrings)

    def keyrings(self, cred: int) -> list[int]:
        """The keyrings `cred` holds (none where the kernel has no CONFIG_KEYS)."""
        layout = self.kernel.layouts[CRED]
        offsets = [getattr(layout, member) for member in KEYRINGS]
        return [self.kernel.machine.mem.read_u64(cred + o) for o in offsets if o is not None]

    # -- tasks ------------------------------------------------------------------

    def of_task(self, task: "Task") -> int:
        """The task's subjective credentials (current->cred)."""
        if not task.cred:
            task.cred = task.real_cred = self.init()
        return task.cred

    def install(self, task: "Task", cred: int, real_cred: int) -> None:
        """rcu_assign_pointer() of the task's cred and real_cred: kept for the
        kernel and written to its task_struct for the module's inlines."""
        task.cred, task.real_cred = cred, real_cred
        structs = task_structs(self.kernel)
        if structs.usable:
            structs.show_creds(task)

    def copy(self, ctx: Any, old: int) -> int:
        """A new cred for the calling module: `old`'s contents, usage 1."""
        size = self.kernel.layouts[CRED].size
        new = self.kernel.slab.alloc(size, getattr(ctx.module, "name", None))
        if new:
            self.kernel.machine.mem.write(new, self.kernel.machine.mem.read(old, size))
            self.set_usage(new, 1)
        return new

    def task_cred(self, ctx: Any, task_struct: int) -> int:
        """The objective credentials of `init_task` or a live task."""
        init_task = self.kernel.symbols.get("init_task")
        if init_task is not None and task_struct == init_task.address:
            return self.init()
        task = self.kernel.machine.sched.task_at(task_struct)
        if task is None:
            raise NotEmulated(f"credentials of task_struct {task_struct:#x}, not a live task")
        self.of_task(task)
        return task.real_cred


def creds(kernel: "Kernel") -> Creds:
    return kernel.subsystem(Creds)


@at_boot
def _boot(kernel: "Kernel") -> None:
    """init_cred exists from boot, as Linux's is static data: made later,
    it would be heap the first task's load seemed to take."""
    state = creds(kernel)
    if state.usable():
        task_structs(kernel).init_cred = state.init()


@export("prepare_kernel_cred", "struct cred *prepare_kernel_cred(struct task_struct *daemon)", nargs=1)
def prepare_kernel_cred(ctx: Any, daemon: int) -> int:
    state = creds(ctx.kernel)
    if not daemon:
        profile = ctx.kernel.profile
        if profile is not None and profile.version >= (6, 2):
            warn_once(ctx, "", "kernel/cred.c", "prepare_kernel_cred")
            return 0
        old = state.init()
    else:
        old = state.task_cred(ctx, daemon)
    new = state.copy(ctx, old)
    layout, mem = ctx.kernel.layouts[CRED], ctx.mem
    if new and layout.jit_keyring is not None:
        for member in KEYRINGS:                   # a kernel service starts with no keyrings
            mem.write_u64(new + getattr(layout, member), 0)
        mem.write(new + layout.jit_keyring, bytes([KEY_REQKEY_DEFL_THREAD_KEYRING]))
    return new


@export("prepare_creds", "struct cred *prepare_creds(void)", nargs=0)
def prepare_creds(ctx: Any) -> int:
    state = creds(ctx.kernel)
    new = state.copy(ctx, state.of_task(ctx.task))
    if new:
        keyrings = state.keyrings(new)
        if any(keyrings):
            from ..security.keyring import get_cred_keyrings
            get_cred_keyrings(ctx.kernel, keyrings)
    return new


@export("get_task_cred", "const struct cred *get_task_cred(struct task_struct *task)", nargs=1)
def get_task_cred(ctx: Any, task: int) -> int:
    state = creds(ctx.kernel)
    return state.get(state.task_cred(ctx, task))


@export("commit_creds", "int commit_creds(struct cred *new)", nargs=1)
def commit_creds(ctx: Any, new: int) -> int:
    """Install `new` as both the task's credentials, consuming the caller's
    reference (one each for cred and real_cred, as Linux counts); the old
    ones are put."""
    state = creds(ctx.kernel)
    task = ctx.task
    old = state.of_task(task)
    old_real = task.real_cred
    if state.usage(new) < 1:
        raise KernelBug(BUG_AT)
    state.get(new)                         # the second reference: real_cred's
    state.install(task, new, new)
    state.put(ctx, old_real)
    state.put(ctx, old)
    return 0


@export("abort_creds", "void abort_creds(struct cred *new)", nargs=1)
def abort_creds(ctx: Any, new: int) -> None:
    state = creds(ctx.kernel)
    if state.usage(new) < 1:
        raise KernelBug(BUG_AT)
    state.put(ctx, new)


@export("override_creds", "const struct cred *override_creds(const struct cred *new)", nargs=1)
def override_creds(ctx: Any, new: int) -> int:
    """The task's subjective credentials become `new` (referenced); the old
    ones are returned for revert_creds()."""
    state = creds(ctx.kernel)
    old = state.of_task(ctx.task)
    state.install(ctx.task, state.get(new), ctx.task.real_cred)
    return old


@export("revert_creds", "void revert_creds(const struct cred *old)", nargs=1)
def revert_creds(ctx: Any, old: int) -> None:
    state = creds(ctx.kernel)
    override = state.of_task(ctx.task)
    state.install(ctx.task, old, ctx.task.real_cred)
    state.put(ctx, override)


@export("__put_cred", "void __put_cred(struct cred *cred)", nargs=1)
def __put_cred(ctx: Any, cred: int) -> None:
    creds(ctx.kernel).free(ctx, cred)
