"""kmod's user-space side for kloader: module trees, their index files, modprobe.d.

`depmod.py` writes what kmod's depmod writes (`kdepmod`), `index.py` is the
`.bin` trie format libkmod reads, `hash.py` reproduces the order depmod's
hash table gives `modules.symbols`, `config.py` reads modprobe.d, and
`tree.py` answers modprobe's questions (which module is this name or alias,
what must load first) for the daemon's `modprobe` op and `request_module()`.
Nothing here imports the kernel or the server: the daemon calls into it.
"""
