"""kernel/power/qos.c: CPU latency QoS requests (`cpu_latency_qos_add_request`,
`_update_request`, `_remove_request`, `_request_active`).

A request is the module's `struct pm_qos_request` (a `struct plist_node`
{prio, prio_list, node_list} then `qos`, at the kernel's offsets): adding one points its
`qos` at the kernel's `cpu_latency_constraints` and its node's prio at the
value, as Linux does; removing it zeroes it.  Adding a request already
added is Linux's WARN "cpu_latency_qos_add_request called for already added
request"; updating or removing one never added, "... called for unknown
object".  Each active request is a registration of its module, so one left
behind is reported.  Where kloader differs: the requests are not linked
into the constraints' plist (no CPU idle state would read the target).
"""

from __future__ import annotations

from typing import Any

from ..api import export
from ..layouts import struct
from ..panic import warn

REQUEST = struct("struct pm_qos_request", "linux/pm_qos.h", "node.prio", "node.prio_list", "node.node_list",
                 "qos")
CONSTRAINTS = struct("struct pm_qos_constraints", "linux/pm_qos.h")    # modules only point at it
STRUCTS = (REQUEST, CONSTRAINTS)


class CpuLatencyQos:
    """cpu_latency_constraints and the requests on it: request -> value."""

    def __init__(self, kernel: Any) -> None:
        self.constraints = kernel.slab.alloc(kernel.layouts[CONSTRAINTS].size, None, zero=True)
        self.requests: dict[int, int] = {}


def _qos(ctx: Any) -> CpuLatencyQos:
    return ctx.kernel.subsystem(CpuLatencyQos)


def _active(ctx: Any, req: int) -> bool:
    return ctx.mem.read_u64(req + ctx.kernel.layouts[REQUEST].qos) == _qos(ctx).constraints


def _set_node(ctx: Any, req: int, value: int) -> None:
    mem, at = ctx.mem, ctx.kernel.layouts[REQUEST]
    mem.write_u32(req + at.node_prio, value & 0xFFFFFFFF)
    for head in (at.node_prio_list, at.node_node_list):
        mem.write_u64(req + head, req + head)
        mem.write_u64(req + head + 8, req + head)


@export("cpu_latency_qos_request_active", "bool cpu_latency_qos_request_active("
        "struct pm_qos_request *req)", nargs=1, gpl=True)
def cpu_latency_qos_request_active(ctx: Any, req: int) -> int:
    return int(_active(ctx, req))


@export("cpu_latency_qos_add_request", "void cpu_latency_qos_add_request("
        "struct pm_qos_request *req, s32 value)", nargs=2, gpl=True)
def cpu_latency_qos_add_request(ctx: Any, req: int, value: int) -> None:
    if not req:
        return
    if _active(ctx, req):
        warn(ctx, "cpu_latency_qos_add_request called for already added request",
             "kernel/power/qos.c:294", "cpu_latency_qos_add_request")
        return
    qos = _qos(ctx)
    ctx.mem.write_u64(req + ctx.kernel.layouts[REQUEST].qos, qos.constraints)
    _set_node(ctx, req, value)
    qos.requests[req] = value
    ctx.kernel.registrations.registry("pm_qos").add(
        req, "cpu latency QoS request", owner=ctx.module, address=req, data=qos,
        on_leftover=lambda entry: entry.data.requests.pop(entry.key, None))


@export("cpu_latency_qos_update_request", "void cpu_latency_qos_update_request("
        "struct pm_qos_request *req, s32 new_value)", nargs=2, gpl=True)
def cpu_latency_qos_update_request(ctx: Any, req: int, value: int) -> None:
    if not req:
        return
    if not _active(ctx, req):
        warn(ctx, "cpu_latency_qos_update_request called for unknown object",
             "kernel/power/qos.c:320", "cpu_latency_qos_update_request")
        return
    ctx.mem.write_u32(req + ctx.kernel.layouts[REQUEST].node_prio, value & 0xFFFFFFFF)
    _qos(ctx).requests[req] = value


@export("cpu_latency_qos_remove_request", "void cpu_latency_qos_remove_request("
        "struct pm_qos_request *req)", nargs=1, gpl=True)
def cpu_latency_qos_remove_request(ctx: Any, req: int) -> None:
    if not req:
        return
    if not _active(ctx, req):
        warn(ctx, "cpu_latency_qos_remove_request called for unknown object",
             "kernel/power/qos.c:347", "cpu_latency_qos_remove_request")
        return
    _qos(ctx).requests.pop(req, None)
    ctx.kernel.registrations.registry("pm_qos").remove(req)
    ctx.mem.write(req, bytes(ctx.kernel.layouts[REQUEST].size))
