"""net/socket.c's ioctl hooks: the bridge's (`brioctl_set`), what
SIOCBRADDBR/SIOCBRDELBR and the SIOC*BRIF/SIOCDEVPRIVATE bridge ioctls call
through `br_ioctl_hook`.

As Linux 6.1 and 6.12: setting the hook (under `br_ioctl_mutex`) replaces
whatever was there, and NULL clears it; nothing is refused.  The hook is
recorded as a registration of the module it is in, so a module that goes
without clearing it is reported and the hook cleared.

Where kloader differs: no socket ioctl reaches the hook, so it is kept, not
called.  (Setting it is atomic here, so the mutex is not taken.)
"""

from __future__ import annotations

from typing import Any

from ..kernel.api import export
from ..kernel.registry import owner_of

REGISTRY = "br_ioctl_hook"


@export("brioctl_set", "void brioctl_set(void *hook)", nargs=1)
def brioctl_set(ctx: Any, hook: int) -> int:
    """br_ioctl_hook = hook."""
    registry = ctx.kernel.registrations.registry(REGISTRY)
    registry.remove(REGISTRY)
    if hook:
        name = ctx.kernel.symbolize(hook, False) or f"{hook:#x}"
        registry.add(REGISTRY, f"bridge ioctl hook {name}", owner=owner_of(ctx.kernel, hook),
                     points_to=(hook,))
    return 0
