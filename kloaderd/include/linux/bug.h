/* SPDX-License-Identifier: GPL-2.0 */
/*
 * BUG() and WARN().  BUG() is x86's: a `ud2` plus a 12-byte `__bug_table`
 * entry { s32 bug_addr_disp; s32 file_disp; u16 line; u16 flags; } (PREL32
 * displacements, as CONFIG_GENERIC_BUG_RELATIVE_POINTERS) so the kernel can
 * say "kernel BUG at file:line!" when the CPU traps.  WARN() calls
 * warn_slowpath_fmt and carries on, returning the condition.
 */
#ifndef _LINUX_BUG_H
#define _LINUX_BUG_H

#include <linux/compiler.h>
#include <linux/types.h>

#define BUGFLAG_WARNING		(1 << 0)
#define BUGFLAG_ONCE		(1 << 1)
#define BUGFLAG_DONE		(1 << 2)
#define BUGFLAG_NO_CUT_HERE	(1 << 3)
#define BUGFLAG_TAINT(taint)	((taint) << 8)

/* The taint flags of include/linux/panic.h that a module can set. */
#define TAINT_PROPRIETARY_MODULE	0
#define TAINT_FORCED_MODULE		1
#define TAINT_WARN			9
#define TAINT_CRAP			10
#define TAINT_FIRMWARE_WORKAROUND	11
#define TAINT_OOT_MODULE		12
#define TAINT_UNSIGNED_MODULE		13

#define __BUG_TRAP(flags)						\
	asm volatile("1:\tud2\n"					\
		     ".pushsection __bug_table,\"aw\"\n"		\
		     "2:\t.long 1b - .\n"				\
		     "\t.long %c0 - .\n"				\
		     "\t.word %c1\n"					\
		     "\t.word %c2\n"					\
		     "\t.org 2b + 12\n"					\
		     ".popsection"					\
		     : : "i" (__FILE__), "i" (__LINE__), "i" (flags))

#define BUG()						\
do {							\
	__BUG_TRAP(0);					\
	__builtin_unreachable();			\
} while (0)

#define BUG_ON(condition)	do { if (unlikely(condition)) BUG(); } while (0)

void warn_slowpath_fmt(const char *file, const int line, unsigned taint,
		       const char *fmt, ...);

#define __WARN_printf(taint, fmt...)					\
	warn_slowpath_fmt(__FILE__, __LINE__, taint, fmt)
#define __WARN()		__WARN_printf(TAINT_WARN, NULL)

#define WARN_ON(condition) ({						\
	int __ret_warn_on = !!(condition);				\
	if (unlikely(__ret_warn_on))					\
		__WARN();						\
	unlikely(__ret_warn_on);					\
})

#define WARN(condition, format...) ({					\
	int __ret_warn_on = !!(condition);				\
	if (unlikely(__ret_warn_on))					\
		__WARN_printf(TAINT_WARN, format);			\
	unlikely(__ret_warn_on);					\
})

#define WARN_TAINT(condition, taint, format...) ({			\
	int __ret_warn_on = !!(condition);				\
	if (unlikely(__ret_warn_on))					\
		__WARN_printf(taint, format);				\
	unlikely(__ret_warn_on);					\
})

/* Warn the first time only; the flag is per module, in its .data.once. */
#define __WARN_ONCE_IF(condition, warn)					\
({									\
	static bool __section(".data.once") __warned;			\
	int __ret_warn_once = !!(condition);				\
	if (unlikely(__ret_warn_once && !__warned)) {			\
		__warned = true;					\
		warn;							\
	}								\
	unlikely(__ret_warn_once);					\
})

#define WARN_ON_ONCE(condition)	__WARN_ONCE_IF(condition, __WARN())
#define WARN_ONCE(condition, format...) \
	__WARN_ONCE_IF(condition, __WARN_printf(TAINT_WARN, format))

#endif /* _LINUX_BUG_H */
