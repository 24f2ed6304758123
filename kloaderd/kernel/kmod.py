"""modprobe inside the daemon, and request_module() (Linux's kernel/module/kmod.c).

Linux's `__request_module()` runs the usermode `modprobe -q -- NAME` and
sleeps until it exits; kloader runs modprobe's logic here, in the kernel's
own trio run, so module code calling `request_module()` sleeps while the
module and its dependencies load, exactly where Linux's caller would.  The
`modprobe` op of the daemon (kmodprobe, Client.modprobe) is the same code.

What modprobe decides comes from `kloaderd.kmod.tree` (the tree's files and
modprobe.d); what is loaded, and loading it, is the kernel's: a module's
file is read here, by the daemon, as finit_module reads the file it is given,
so a whole tree never crosses the socket.

Bounds, as Linux's: at most `kmod_concurrent_max` (50) requests run at once;
a request that finds them all busy waits `kmod_busy_timeout` (5 s) and then
fails with -ETIME and Linux's warning.  A module requesting itself, or a
loop of requests, ends because the module being initialised is already
"in kernel" for modprobe (its /sys/module initstate is "coming"), as in
Linux.  `request_module_nowait()` waits too: kloader has no usermode helper
to leave running (docs/semantics.md).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import trio

from ..errors import KernelError
from ..uapi import MODULE_INIT_COMPRESSED_FILE
from ..kmod.tree import Entry, ModuleTree, Step
from ..decompress import compression_of
from ..mm.anon import ANON_MIN, AnonBuffer
from .printk import KERN_WARNING

if TYPE_CHECKING:
    from .module import Module
    from .options import KernelOptions
    from .printk import LogBuffer
    from .profile import KernelProfile

MODULE_NAME_LEN = 56


class Syscalls(Protocol):
    """What modprobe uses of the kernel: the system calls and what /proc and
    /sys show, as the real modprobe does from user space — never the
    kernel's internals.  `Kernel` (kernel.py) is one."""

    options: KernelOptions
    log: LogBuffer
    profile: KernelProfile | None

    @property
    def release(self) -> str: ...

    def find_module(self, name: str) -> Module | None: ...

    async def init_module(self, image: bytes, params: str = "", *, flags: int = 0) -> str: ...

    async def delete_module(self, name: str, *, wait: bool = False, force: bool = False,
                            timeout: float | None = None) -> None: ...


class Kmod:
    """The kernel's side of module autoloading: one per kernel."""

    def __init__(self, kernel: Syscalls) -> None:
        self.kernel = kernel
        self.concurrent = trio.Semaphore(kernel.options.kmod_concurrent_max)

    def default_dirname(self) -> str:
        """The tree of the kernel being emulated: --module-dir; else, for a kernel profile, the
        modules beside its build tree (`/lib/modules/RELEASE/build`'s parent, or
        ROOT/lib/modules/RELEASE for ROOT/usr/src/linux-headers-RELEASE); else /lib/modules/RELEASE."""
        if self.kernel.options.module_dir:
            return self.kernel.options.module_dir
        release = self.kernel.release
        profile = self.kernel.profile
        if profile is not None:
            tree = Path(profile.tree)
            candidates = [tree.parent] if tree.name == "build" else []
            if len(tree.parents) >= 3:
                candidates.append(tree.parents[2] / "lib" / "modules" / release)
            for candidate in candidates:
                if (candidate / "modules.dep").exists():
                    return str(candidate)
        return f"/lib/modules/{release}"

    def tree(self, dirname: str | None = None, config: list[str] | None = None) -> ModuleTree:
        """The tree and modprobe.d a request reads: its own, else the kernel's options'."""
        if config is None and self.kernel.options.modprobe_config:
            config = self.kernel.options.modprobe_config.split(":")
        return ModuleTree(dirname or self.default_dirname(), config)

    # -- request_module() ---------------------------------------------------------------
    async def request_module(self, name: str) -> int:
        """__request_module(): 0, a negative errno, or modprobe's wait status (exit 1 is 256)."""
        if len(name) >= MODULE_NAME_LEN:
            return -errno.ENAMETOOLONG
        limit = self.kernel.options.kmod_concurrent_max
        timeout = self.kernel.options.kmod_busy_timeout
        acquired = False
        with trio.move_on_after(timeout):
            await self.concurrent.acquire()
            acquired = True
        if not acquired:
            self.kernel.log.emit(KERN_WARNING, f"request_module: modprobe {name} cannot be processed, "
                                               f"kmod busy with {limit} threads for more than "
                                               f"{timeout:g} seconds now")
            return -errno.ETIME
        try:
            await self.modprobe(name)
            return 0
        except KernelError:
            return 1 << 8       # modprobe exited 1: call_usermodehelper's wait status
        finally:
            self.concurrent.release()

    # -- modprobe ----------------------------------------------------------------------------
    async def modprobe(self, name: str, params: str = "", *, remove: bool = False, wait: bool = False,
                       timeout: float | None = None, first_time: bool = False, dry_run: bool = False, show_depends: bool = False,
                       ignore_install: bool = False, dirname: str | None = None,
                       config: list[str] | None = None) -> dict[str, Any]:
        """Load (or with `remove`, remove) what `name` means; returns the actions taken.

        Raises `KernelError` with modprobe's message where modprobe exits 1.
        """
        tree = self.tree(dirname, config)
        actions: list[str] = []
        if remove:
            await self._remove(tree, name, actions, wait=wait, timeout=timeout, first_time=first_time,
                               dry_run=dry_run)
        else:
            await self._insert(tree, name, params, actions, first_time=first_time,
                               dry_run=dry_run or show_depends, ignore_loaded=show_depends,
                               ignore_install=ignore_install)
        return {"actions": actions, "dirname": tree.dirname}

    def _state(self, tree: ModuleTree, name: str) -> str | None:
        """kmod_module_get_initstate: 'builtin', 'live', 'coming', 'going' or None."""
        if name in tree.builtin:
            return "builtin"
        mod = self.kernel.find_module(name)
        return None if mod is None else mod.state.value

    def _in_kernel(self, tree: ModuleTree, name: str) -> bool:
        return self._state(tree, name) in ("builtin", "live", "coming")

    async def _insert(self, tree: ModuleTree, name: str, params: str, actions: list[str], *,
                      first_time: bool, dry_run: bool, ignore_loaded: bool, ignore_install: bool) -> None:
        entries = tree.lookup(name)
        if not entries:
            raise KernelError(errno.ENOENT, f"Module {name} not found in directory {tree.dirname}")
        for entry in entries:
            await self._probe(tree, entry, params, actions, first_time=first_time, dry_run=dry_run,
                              ignore_loaded=ignore_loaded, ignore_install=ignore_install)

    async def _probe(self, tree: ModuleTree, entry: Entry, params: str, actions: list[str], *,
                     first_time: bool, dry_run: bool, ignore_loaded: bool, ignore_install: bool) -> None:
        """kmod_module_probe_insert_module."""
        if not ignore_loaded and self._in_kernel(tree, entry.name):
            if first_time:
                raise KernelError(errno.EEXIST, f"could not insert '{entry.name}': Module already in kernel")
            return
        if entry.alias is not None and tree.blacklisted(entry.name):
            return          # a blacklisted module is not loaded for an alias, silently
        for step in tree.probe_list(entry, params, ignore_install):
            if not ignore_loaded and self._in_kernel(tree, step.name):
                if step.name == entry.name and first_time:
                    raise KernelError(errno.EEXIST, f"could not insert '{entry.name}': "
                                                      f"Module already in kernel")
                continue
            if step.install is not None:
                actions.append(f"install {step.install} {step.options}")
                if not dry_run:
                    raise KernelError(errno.EPERM, f"could not insert '{step.name}': kloader runs no "
                                                     f"install commands (modprobe.d: install {step.name} "
                                                     f"{step.install}); use --ignore-install")
                continue
            if step.path is None:
                if self._state(tree, step.name) == "builtin":
                    actions.append(f"builtin {step.name}")
                continue
            actions.append(f"insmod {step.path} {step.options}")
            if dry_run:
                continue
            try:
                await self._load(step)
            except KernelError as exc:
                if exc.errno == errno.EEXIST or not step.required:
                    continue
                raise KernelError(exc.errno, _insert_failure(step.name, exc)) from exc

    async def _load(self, step: Step) -> str:
        """finit_module of the module's file, read by the daemon itself."""
        limit = self.kernel.options.max_image_size
        try:
            with open(step.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                # A big file into memory the loader gives back as it goes.
                data = AnonBuffer.read(f.fileno(), size) if ANON_MIN <= size <= limit else f.read(limit + 1)
        except OSError as exc:
            raise KernelError(exc.errno or errno.EIO, f"could not open '{step.path}': {exc.strerror}") from None
        if len(data) > limit:
            raise KernelError(errno.EFBIG, f"module image is larger than the limit of {limit} bytes")
        # As modprobe: the kernel decompresses (off the loop, as finit_module).
        flags = MODULE_INIT_COMPRESSED_FILE if compression_of(data) is not None else 0
        return await self.kernel.init_module(data, step.options, flags=flags)

    async def _remove(self, tree: ModuleTree, name: str, actions: list[str], *, wait: bool,
                      timeout: float | None, first_time: bool, dry_run: bool) -> None:
        entries = tree.lookup(name)
        if not entries:
            raise KernelError(errno.ENOENT, f"Module {name} not found.")
        for entry in entries:
            await self._rmmod_module(tree, entry.name, actions, wait=wait, timeout=timeout,
                                     first_time=first_time, dry_run=dry_run, top=True)

    async def _rmmod_module(self, tree: ModuleTree, name: str, actions: list[str], *, wait: bool,
                            first_time: bool, dry_run: bool, top: bool, timeout: float | None = None) -> None:
        """modprobe's rmmod_do_module."""
        pre, post = tree.softdeps(name)
        command = tree.config.remove.get(name)
        if command is not None:
            raise KernelError(errno.EPERM, f"could not remove '{name}': kloader runs no remove commands "
                                             f"(modprobe.d: remove {name} {command})")
        state = self._state(tree, name)
        if state is None:
            if first_time:
                raise KernelError(errno.ENOENT, f"Module {name} is not in kernel.")
            return
        if state == "builtin":
            if top:
                raise KernelError(errno.ENOENT, f"Module {name} is builtin.")
            return
        for soft in reversed(post):
            await self._rmmod_soft(tree, soft, actions, dry_run)
        mod = self.kernel.find_module(name)
        if not wait and mod is not None and mod.refcount > 0:
            raise KernelError(errno.EBUSY, f"Module {name} is in use.")
        await self._delete(name, actions, wait=wait, timeout=timeout, dry_run=dry_run, fatal=True)
        for dep in tree.dependencies(name):
            dmod = self.kernel.find_module(dep)
            if dmod is not None and dmod.refcount == 0:
                await self._delete(dep, actions, wait=False, dry_run=dry_run, fatal=False)
        for soft in reversed(pre):
            await self._rmmod_soft(tree, soft, actions, dry_run)

    async def _rmmod_soft(self, tree: ModuleTree, name: str, actions: list[str], dry_run: bool) -> None:
        try:
            await self._rmmod_module(tree, name, actions, wait=False, first_time=False,
                                     dry_run=dry_run, top=False)
        except KernelError:
            pass        # softdeps: errors are not fatal

    async def _delete(self, name: str, actions: list[str], *, wait: bool, dry_run: bool, fatal: bool,
                      timeout: float | None = None) -> None:
        """rmmod_do_remove_module."""
        actions.append(f"rmmod {name}")
        if dry_run:
            return
        try:
            await self.kernel.delete_module(name, wait=wait, timeout=timeout)
        except KernelError as exc:
            if exc.errno == errno.ENOENT:
                return          # gone meanwhile: what modprobe -r wanted
            if fatal:
                raise KernelError(exc.errno, f"could not remove '{name}': {os.strerror(exc.errno)}") from exc


def _insert_failure(name: str, exc: KernelError) -> str:
    """modprobe's wording for a failed insertion (the kernel's own message is in the log)."""
    if exc.errno == errno.ENOENT:
        return f"could not insert '{name}': Unknown symbol in module, or unknown parameter (see dmesg)"
    return f"could not insert '{name}': {os.strerror(exc.errno)}"
