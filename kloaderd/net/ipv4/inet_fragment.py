"""net/ipv4/inet_fragment.c: the shared state of IP fragment reassembly,
which every reassembler (IPv6 conntrack's `nf_defrag_ipv6`, 6LoWPAN,
IEEE 802.15.4) sets up in its init and per namespace.

As Linux 6.1:
- `inet_frags_init(f)` makes the queue cache (`kmem_cache_create` of
  `f->frags_cache_name`, `f->qsize` bytes; -ENOMEM without it) and sets
  `f->refcnt` to 1 and `f->completion` not done.
- `fqdir_init(&fqdir, f, net)` allocates a zeroed `struct fqdir` for the
  namespace, with `f` and `net`, and its hash table of queues
  (`rhashtable_init` with `f->rhash_params`: its error is returned and the
  fqdir freed); each fqdir holds a reference on `f`.
- `fqdir_exit(fqdir)` (after the inline `fqdir_pre_exit` marked it dead)
  queues its destruction on `inet_frag_wq`: the hash table is destroyed,
  then, after an RCU barrier, the reference on `f` is dropped (completing
  `f->completion` when it was the last) and the fqdir freed.
- `inet_frags_fini(f)` drops the initial reference, waits for the
  completion (every fqdir gone), and destroys the cache.

Where kloader differs: the two deferred steps (`fqdir_work_fn` on
`inet_frag_wq`, then `fqdir_free_fn` on `system_wq`) are one work item on
`inet_frag_wq`.  No packet reaches a reassembler, so no fragment queue is
ever made (`inet_frag_find` and the queue functions stay not emulated) and
a table holds none when destroyed; one that did would need
`inet_frags_free_cb`, which is reported as not emulated and its queues
left to the leak check.

Layouts (Linux 6.1 x86-64, tools/struct_probe.py): inet_frags {qsize@0,
frags_cachep@32, frags_cache_name@40, rhash_params@48, refcnt@88,
completion@96; 128 bytes}; fqdir {f@24, net@32, dead@40, rhashtable@64,
destroy_work@264; 320 bytes}.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.api.sched import complete, wait_for_completion
from ...kernel.callback import finished
from ...kernel.printk import KERN_ERR
from ...kernel.rcu import rcu_barrier
from ...lib.rhashtable import HT_NELEMS, rhashtable_destroy, rhashtable_init
from ...mm.slab_common import kmem_cache_create, kmem_cache_destroy
from ...workqueue.workqueue import init_work, queue_work_on, workqueues

LAYOUTS = (6, 1)       # the Linux release whose structure layouts this file reads

F_QSIZE, F_FRAGS_CACHEP, F_FRAGS_CACHE_NAME, F_RHASH_PARAMS, F_REFCNT, F_COMPLETION = (
    0, 32, 40, 48, 88, 96)
FQDIR_F, FQDIR_NET, FQDIR_RHASHTABLE, FQDIR_DESTROY_WORK, FQDIR_SIZE = 24, 32, 64, 264, 320
COMPLETION_WAIT_TASK_LIST = 16      # completion.wait.task_list (an empty swait queue)


class InetFragWq:
    """inet_frag_wq: create_workqueue("inet_frag_wq"), one item at a time,
    made on first use (Linux makes it at boot)."""

    def __init__(self, kernel: Any) -> None:
        self.address = workqueues(kernel).create("inet_frag_wq", None, 1).address


@export("inet_frags_init", "int inet_frags_init(struct inet_frags *f)", nargs=1)
def inet_frags_init(ctx: Any, f: int) -> int:
    mem = ctx.mem
    cache = kmem_cache_create(ctx, mem.read_u64(f + F_FRAGS_CACHE_NAME), mem.read_u32(f + F_QSIZE),
                              0, 0, 0)
    mem.write_u64(f + F_FRAGS_CACHEP, cache)
    if not cache:
        return -errno.ENOMEM
    mem.write_u32(f + F_REFCNT, 1)
    done = f + F_COMPLETION                      # init_completion()
    mem.write(done, bytes(COMPLETION_WAIT_TASK_LIST))
    mem.write_u64(done + COMPLETION_WAIT_TASK_LIST, done + COMPLETION_WAIT_TASK_LIST)
    mem.write_u64(done + COMPLETION_WAIT_TASK_LIST + 8, done + COMPLETION_WAIT_TASK_LIST)
    return 0


def _put(ctx: Any, f: int) -> None:
    """refcount_dec_and_test(&f->refcnt) and complete() on the last."""
    count = ctx.mem.read_u32(f + F_REFCNT) - 1
    ctx.mem.write_u32(f + F_REFCNT, count & 0xFFFFFFFF)
    if count == 0:
        complete(ctx, f + F_COMPLETION)


async def _fini(ctx: Any, f: int) -> int:
    _put(ctx, f)
    await finished(wait_for_completion(ctx, f + F_COMPLETION))
    kmem_cache_destroy(ctx, ctx.mem.read_u64(f + F_FRAGS_CACHEP))
    ctx.mem.write_u64(f + F_FRAGS_CACHEP, 0)
    return 0


@export("inet_frags_fini", "void inet_frags_fini(struct inet_frags *f)", nargs=1)
def inet_frags_fini(ctx: Any, f: int) -> Any:
    return _fini(ctx, f)


@export("fqdir_init", "int fqdir_init(struct fqdir **fqdirp, struct inet_frags *f, struct net *net)",
        nargs=3)
def fqdir_init(ctx: Any, fqdirp: int, f: int, net: int) -> int:
    slab, owner, mem = ctx.kernel.slab, getattr(ctx.module, "name", None), ctx.mem
    fqdir = slab.alloc(FQDIR_SIZE, owner, zero=True)
    if not fqdir:
        return -errno.ENOMEM
    mem.write_u64(fqdir + FQDIR_F, f)
    mem.write_u64(fqdir + FQDIR_NET, net)
    res = rhashtable_init(ctx, fqdir + FQDIR_RHASHTABLE, f + F_RHASH_PARAMS)
    if res < 0:
        slab.free(fqdir, owner)
        return res
    mem.write_u32(f + F_REFCNT, (mem.read_u32(f + F_REFCNT) + 1) & 0xFFFFFFFF)
    mem.write_u64(fqdirp, fqdir)
    return 0


@export("fqdir_exit", "void fqdir_exit(struct fqdir *fqdir)", nargs=1)
def fqdir_exit(ctx: Any, fqdir: int) -> int:
    work = fqdir + FQDIR_DESTROY_WORK
    init_work(ctx.mem, work, ctx.kernel.machine.kernel_symbols()["fqdir_work_fn"])
    return queue_work_on(ctx, 0, ctx.kernel.subsystem(InetFragWq).address, work)


async def _destroy(ctx: Any, fqdir: int) -> int:
    mem = ctx.mem
    table = fqdir + FQDIR_RHASHTABLE
    if mem.read_u32(table + HT_NELEMS):
        ctx.kernel.log.emit(KERN_ERR, "kloader: kernel function inet_frags_free_cb is not "
                                      "emulated: fragment queues left in the table", None)
    await rhashtable_destroy(ctx, table)
    await finished(rcu_barrier(ctx))
    _put(ctx, mem.read_u64(fqdir + FQDIR_F))
    ctx.kernel.slab.free(fqdir, None)
    return 0


@export("fqdir_work_fn", "void fqdir_work_fn(struct work_struct *work)", nargs=1)
def fqdir_work_fn(ctx: Any, work: int) -> Any:
    """The destruction fqdir_exit queued (a kernel function of Linux's, not exported)."""
    return _destroy(ctx, work - FQDIR_DESTROY_WORK)
