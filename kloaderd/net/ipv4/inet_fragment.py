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
- `fqdir_pre_exit(fqdir)` (an inline before 6.12.y's fix that made it a
  function flushing the queues) stops new queues (`high_thresh` 0) and
  marks the fqdir dead.
- `fqdir_exit(fqdir)`
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

inet_frags {qsize, frags_cachep, frags_cache_name, rhash_params, refcnt,
completion}, fqdir {f, net, rhashtable, destroy_work} and the completion's
wait list are read at the running kernel's offsets, and the fqdir is
allocated at its sizeof.
"""

from __future__ import annotations

import errno
from typing import Any

from ...kernel.api import export
from ...kernel.api.sched import complete, wait_for_completion
from ...kernel.callback import finished
from ...kernel.layouts import struct
from ...kernel.oops import NotEmulated
from ...kernel.printk import KERN_ERR
from ...kernel.rcu import rcu_barrier
from ...lib.rhashtable import RHASHTABLE, rhashtable_destroy, rhashtable_init
from ...mm.slab_common import kmem_cache_create, kmem_cache_destroy
from ...workqueue.workqueue import init_work, queue_work_on, workqueues

FRAGS = struct("struct inet_frags", "net/inet_frag.h", "qsize", "frags_cachep", "frags_cache_name",
               "rhash_params", "refcnt", "completion")
FQDIR = struct("struct fqdir", "net/inet_frag.h", "high_thresh", "f", "net", "dead", "rhashtable",
               "destroy_work")
COMPLETION = struct("struct completion", "linux/completion.h", "done", "wait.task_list")
STRUCTS = (FRAGS, FQDIR, COMPLETION)      # what these functions read at the kernel's offsets


class InetFragWq:
    """inet_frag_wq: create_workqueue("inet_frag_wq"), one item at a time,
    made on first use (Linux makes it at boot)."""

    def __init__(self, kernel: Any) -> None:
        self.address = workqueues(kernel).create("inet_frag_wq", None, 1).address


@export("inet_frags_init", "int inet_frags_init(struct inet_frags *f)", nargs=1)
def inet_frags_init(ctx: Any, f: int) -> int:
    mem, frags = ctx.mem, ctx.kernel.layouts[FRAGS]
    cache = kmem_cache_create(ctx, mem.read_u64(f + frags.frags_cache_name),
                              mem.read_u32(f + frags.qsize), 0, 0, 0)
    mem.write_u64(f + frags.frags_cachep, cache)
    if not cache:
        return -errno.ENOMEM
    mem.write_u32(f + frags.refcnt, 1)
    done, completion = f + frags.completion, ctx.kernel.layouts[COMPLETION]
    mem.write(done, bytes(completion.size))      # init_completion(): an empty swait queue
    tasks = done + completion.wait_task_list
    mem.write_u64(tasks, tasks)
    mem.write_u64(tasks + 8, tasks)
    return 0


def _put(ctx: Any, f: int) -> None:
    """refcount_dec_and_test(&f->refcnt) and complete() on the last."""
    frags = ctx.kernel.layouts[FRAGS]
    count = ctx.mem.read_u32(f + frags.refcnt) - 1
    ctx.mem.write_u32(f + frags.refcnt, count & 0xFFFFFFFF)
    if count == 0:
        complete(ctx, f + frags.completion)


async def _fini(ctx: Any, f: int) -> int:
    frags = ctx.kernel.layouts[FRAGS]
    _put(ctx, f)
    await finished(wait_for_completion(ctx, f + frags.completion))
    kmem_cache_destroy(ctx, ctx.mem.read_u64(f + frags.frags_cachep))
    ctx.mem.write_u64(f + frags.frags_cachep, 0)
    return 0


@export("inet_frags_fini", "void inet_frags_fini(struct inet_frags *f)", nargs=1)
def inet_frags_fini(ctx: Any, f: int) -> Any:
    return _fini(ctx, f)


@export("fqdir_init", "int fqdir_init(struct fqdir **fqdirp, struct inet_frags *f, struct net *net)",
        nargs=3)
def fqdir_init(ctx: Any, fqdirp: int, f: int, net: int) -> int:
    slab, owner, mem = ctx.kernel.slab, getattr(ctx.module, "name", None), ctx.mem
    frags, dir_ = ctx.kernel.layouts[FRAGS], ctx.kernel.layouts[FQDIR]
    fqdir = slab.alloc(dir_.size, owner, zero=True)
    if not fqdir:
        return -errno.ENOMEM
    mem.write_u64(fqdir + dir_.f, f)
    mem.write_u64(fqdir + dir_.net, net)
    res = rhashtable_init(ctx, fqdir + dir_.rhashtable, f + frags.rhash_params)
    if res < 0:
        slab.free(fqdir, owner)
        return res
    mem.write_u32(f + frags.refcnt, (mem.read_u32(f + frags.refcnt) + 1) & 0xFFFFFFFF)
    mem.write_u64(fqdirp, fqdir)
    return 0


@export("fqdir_pre_exit", "void fqdir_pre_exit(struct fqdir *fqdir)", nargs=1)
def fqdir_pre_exit(ctx: Any, fqdir: int) -> None:
    mem, dir_ = ctx.mem, ctx.kernel.layouts[FQDIR]
    mem.write_u64(fqdir + dir_.high_thresh, 0)
    mem.write(fqdir + dir_.dead, b"\x01")
    if mem.read_u32(fqdir + dir_.rhashtable + ctx.kernel.layouts[RHASHTABLE].nelems):
        raise NotEmulated("inet_frag_queue_flush")   # queues kloader never saw made


@export("fqdir_exit", "void fqdir_exit(struct fqdir *fqdir)", nargs=1)
def fqdir_exit(ctx: Any, fqdir: int) -> int:
    work = fqdir + ctx.kernel.layouts[FQDIR].destroy_work
    init_work(ctx.mem, work, ctx.kernel.machine.kernel_symbols()["fqdir_work_fn"])
    return queue_work_on(ctx, 0, ctx.kernel.subsystem(InetFragWq).address, work)


async def _destroy(ctx: Any, fqdir: int) -> int:
    mem, dir_ = ctx.mem, ctx.kernel.layouts[FQDIR]
    table = fqdir + dir_.rhashtable
    if mem.read_u32(table + ctx.kernel.layouts[RHASHTABLE].nelems):
        ctx.kernel.log.emit(KERN_ERR, "kloader: kernel function inet_frags_free_cb is not "
                                      "emulated: fragment queues left in the table", None)
    await rhashtable_destroy(ctx, table)
    await finished(rcu_barrier(ctx))
    _put(ctx, mem.read_u64(fqdir + dir_.f))
    ctx.kernel.slab.free(fqdir, None)
    return 0


@export("fqdir_work_fn", "void fqdir_work_fn(struct work_struct *work)", nargs=1)
def fqdir_work_fn(ctx: Any, work: int) -> Any:
    """The destruction fqdir_exit queued (a kernel function of Linux's, not exported)."""
    return _destroy(ctx, work - ctx.kernel.layouts[FQDIR].destroy_work)
