/* SPDX-License-Identifier: GPL-2.0 */
/*
 * DO_ONCE(func, args...): call func once, ever, from this call site
 * (lib/once.c, kloaderd/lib/once.py).  The site's own static key, defined
 * true, keeps the call reachable; once the work is done the kernel
 * disables the key from a work item, and the branch becomes a NOP.
 */
#ifndef _LINUX_ONCE_H
#define _LINUX_ONCE_H

#include <linux/jump_label.h>
#include <linux/types.h>

struct module;

bool __do_once_start(bool *done, unsigned long *flags);
void __do_once_done(bool *done, struct static_key_true *once_key,
		    unsigned long *flags, struct module *mod);

#define DO_ONCE(func, ...)						\
({									\
	bool ___ret = false;						\
	static bool __section(".data.once") ___done = false;		\
	static DEFINE_STATIC_KEY_TRUE(___once_key);			\
	if (static_branch_unlikely(&___once_key)) {			\
		unsigned long ___flags;					\
		___ret = __do_once_start(&___done, &___flags);		\
		if (__builtin_expect(___ret, 0)) {			\
			func(__VA_ARGS__);				\
			__do_once_done(&___done, &___once_key,		\
				       &___flags, THIS_MODULE);		\
		}							\
	}								\
	___ret;								\
})

#endif /* _LINUX_ONCE_H */
