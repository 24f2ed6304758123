/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Exporting symbols to other modules, in Linux 6.6's binary form: a 12-byte
 * `struct kernel_symbol { int value_offset; int name_offset;
 * int namespace_offset; }` in __ksymtab (__ksymtab_gpl for GPL-only
 * exports), each field a PC-relative offset (PREL32) to the symbol, to its
 * name in __ksymtab_strings and to its namespace ("" for none).
 */
#ifndef _LINUX_EXPORT_H
#define _LINUX_EXPORT_H

#include <linux/compiler.h>
#include <linux/stringify.h>

struct module;

struct kernel_symbol {
	int value_offset;
	int name_offset;
	int namespace_offset;
};

#ifdef MODULE
extern struct module __this_module;
#define THIS_MODULE (&__this_module)
#else
#define THIS_MODULE ((struct module *)0)
#endif

#define __KSYMTAB_ENTRY(sym, sec, ns)					\
	asm("	.pushsection \"__ksymtab_strings\",\"aMS\",@progbits,1\n"	\
	    "__kstrtab_" #sym ":\n"					\
	    "	.asciz \"" #sym "\"\n"					\
	    "__kstrtabns_" #sym ":\n"					\
	    "	.asciz \"" ns "\"\n"					\
	    "	.popsection\n"						\
	    "	.pushsection \"" sec "\",\"a\"\n"			\
	    "	.balign 4\n"						\
	    "__ksymtab_" #sym ":\n"					\
	    "	.long " #sym " - .\n"					\
	    "	.long __kstrtab_" #sym " - .\n"				\
	    "	.long __kstrtabns_" #sym " - .\n"			\
	    "	.popsection\n")

/* The declaration makes exporting an undeclared symbol a compile error. */
#define __EXPORT_SYMBOL(sym, sec, ns)					\
	extern __typeof__(sym) sym;					\
	__KSYMTAB_ENTRY(sym, sec, ns)

#define EXPORT_SYMBOL(sym)		__EXPORT_SYMBOL(sym, "__ksymtab", "")
#define EXPORT_SYMBOL_GPL(sym)		__EXPORT_SYMBOL(sym, "__ksymtab_gpl", "")

#endif /* _LINUX_EXPORT_H */
