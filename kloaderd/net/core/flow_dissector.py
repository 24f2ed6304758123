"""net/core/flow_dissector.c: `skb_flow_dissector_init`, which a module
calls once to describe where the flow dissector should put each key it
wants (bonding's transmit hash, tc flower, OVS).

As Linux: the dissector is zeroed, then for each `struct flow_dissector_key`
{key_id, offset} the key's bit is set in `used_keys` and `offset[key_id]`
is the offset.  An offset above USHRT_MAX, a key given twice, a key id
beyond FLOW_DISSECTOR_KEY_MAX, or a set without the CONTROL and BASIC keys
is BUG() ("kernel BUG at net/core/flow_dissector.c!", without Linux's line
number).  `used_keys` is 4 bytes in 6.1 and 8 in 6.12; the structures and
the key ids are read at the running kernel's offsets and values.  No packet
is ever dissected.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export
from ...kernel.layouts import constants, struct
from ...kernel.oops import KernelBug

DISSECTOR = struct("struct flow_dissector", "net/flow_dissector.h", "used_keys", "offset",
                   sized=("used_keys",))
KEY = struct("struct flow_dissector_key", "net/flow_dissector.h", "key_id", "offset")
KEY_IDS = constants("enum flow_dissector_key_id", "net/flow_dissector.h", "FLOW_DISSECTOR_KEY_CONTROL",
                    "FLOW_DISSECTOR_KEY_BASIC", "FLOW_DISSECTOR_KEY_MAX")
STRUCTS = (DISSECTOR, KEY, KEY_IDS)      # what this reads at the kernel's offsets
USHRT_MAX = 0xFFFF
WHERE = "net/core/flow_dissector.c"


@export("skb_flow_dissector_init", "void skb_flow_dissector_init(struct flow_dissector *flow_dissector, "
        "const struct flow_dissector_key *key, unsigned int key_count)", nargs=3)
def skb_flow_dissector_init(ctx: Any, dissector: int, key: int, key_count: int) -> None:
    layouts, mem = ctx.kernel.layouts, ctx.mem
    d, k, ids = layouts[DISSECTOR], layouts[KEY], layouts[KEY_IDS]
    mem.write(dissector, bytes(d.size))
    used = 0
    for i in range(key_count & 0xFFFFFFFF):
        entry = key + i * k.size
        key_id, offset = mem.read_u32(entry + k.key_id), mem.read_u64(entry + k.offset)
        if offset > USHRT_MAX or key_id >= ids.FLOW_DISSECTOR_KEY_MAX or used >> key_id & 1:
            raise KernelBug(WHERE)
        used |= 1 << key_id
        mem.write(dissector + d.used_keys, used.to_bytes(d.sizeof_used_keys, "little"))
        mem.write_u16(dissector + d.offset + 2 * key_id, offset)
    if not used >> ids.FLOW_DISSECTOR_KEY_CONTROL & 1 or not used >> ids.FLOW_DISSECTOR_KEY_BASIC & 1:
        raise KernelBug(WHERE)
