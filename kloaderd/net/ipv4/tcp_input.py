"""net/ipv4/tcp_input.c: what kTLS's device offload asks of TCP input.

`clean_acked_data_flush` waits for the deferred static key
`clean_acked_data_enabled` (DEFINE_STATIC_KEY_DEFERRED_FALSE, HZ) to have
done its last pending decrement, so that `tls` can go without the key's
delayed work outliving it.  The key is incremented and decremented only by
`clean_acked_data_enable`/`_disable`, when a TLS-offloaded socket starts and
stops: no TCP socket exists in kloader and those two are not emulated, so
no decrement is ever pending and the flush has nothing to wait for, as on
Linux where no offloaded socket was ever made.
"""

from __future__ import annotations

from typing import Any

from ...kernel.api import export


@export("clean_acked_data_flush", "void clean_acked_data_flush(void)", nargs=0)
def clean_acked_data_flush(ctx: Any) -> int:
    return 0
