/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Everything a loadable module declares about itself: its struct module
 * (kmodbuild's .mod.c defines __this_module), .modinfo tags, module_init /
 * module_exit, and the reference counting of Rusty Russell's module FAQ.
 */
#ifndef _LINUX_MODULE_H
#define _LINUX_MODULE_H

#include <linux/compiler.h>
#include <linux/types.h>
#include <linux/stringify.h>
#include <linux/list.h>
#include <linux/init.h>
#include <linux/export.h>
#include <linux/moduleparam.h>
#include <linux/kernel.h>

#define MODULE_NAME_LEN	(64 - sizeof(unsigned long))

enum module_state {
	MODULE_STATE_LIVE,	/* Normal state. */
	MODULE_STATE_COMING,	/* Full formed, running module_init. */
	MODULE_STATE_GOING,	/* Going away. */
	MODULE_STATE_UNFORMED,	/* Still setting it up. */
};

/*
 * kloader's struct module: the fields the kernel and modules share, at the
 * offsets docs/architecture.md fixes; the rest of Linux's struct module is
 * kept by the emulated kernel in Python.
 */
struct module {
	enum module_state state;		/* @0 */
	struct list_head list;			/* @8 */
	char name[64 - sizeof(unsigned long)];	/* @24 */
	int (*init)(void);			/* @80 */
	void (*exit)(void);			/* @88 */
	unsigned long __reserved[4];		/* @96, the kernel's */
} ____cacheline_aligned;

_Static_assert(__builtin_offsetof(struct module, name) == 24, "module.name @24");
_Static_assert(__builtin_offsetof(struct module, init) == 80, "module.init @80");
_Static_assert(__builtin_offsetof(struct module, exit) == 88, "module.exit @88");
_Static_assert(sizeof(struct module) == 128, "struct module is 128 bytes");

/* One entry of __versions: the CRC of an imported symbol's prototype. */
struct modversion_info {
	unsigned long crc;
	char name[64 - sizeof(unsigned long)];
};

_Static_assert(sizeof(struct modversion_info) == 64, "modversion_info is 64 bytes");

/* Generic info of the form tag = "info", e.g. MODULE_INFO(staging, "Y"). */
#define MODULE_INFO(tag, info)		__MODULE_INFO(tag, tag, info)

#define MODULE_ALIAS(_alias)		MODULE_INFO(alias, _alias)
#define MODULE_SOFTDEP(_softdep)	MODULE_INFO(softdep, _softdep)
/* "GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", ... */
#define MODULE_LICENSE(_license)	MODULE_INFO(license, _license)
#define MODULE_AUTHOR(_author)		MODULE_INFO(author, _author)
#define MODULE_DESCRIPTION(_description) MODULE_INFO(description, _description)
#define MODULE_VERSION(_version)	MODULE_INFO(version, _version)
#define MODULE_FIRMWARE(_firmware)	MODULE_INFO(firmware, _firmware)
#define MODULE_IMPORT_NS(ns)		MODULE_INFO(import_ns, __stringify(ns))

/* The kernel finds a module's entry points by these two names. */
extern int init_module(void);
extern void cleanup_module(void);

/*
 * module_init(fn) makes init_module an alias of fn (with fn's attributes,
 * so it stays in .init.text); __inittest makes a wrong signature a compile
 * error.  The same for module_exit and cleanup_module.
 */
#define module_init(initfn)					\
	static inline initcall_t __maybe_unused __inittest(void)	\
	{ return initfn; }					\
	int init_module(void) __copy(initfn)			\
		__attribute__((alias(#initfn)));		\
	___ADDRESSABLE(init_module, __initdata)

#define module_exit(exitfn)					\
	static inline exitcall_t __maybe_unused __exittest(void)	\
	{ return exitfn; }					\
	void cleanup_module(void) __copy(exitfn)		\
		__attribute__((alias(#exitfn)));		\
	___ADDRESSABLE(cleanup_module, __exitdata)

/*
 * References (the FAQ's owner references): try_module_get fails once the
 * module is going away; every successful get needs one module_put.
 */
bool try_module_get(struct module *module);
void module_put(struct module *module);
void __module_get(struct module *module);
int module_refcount(struct module *mod);

static inline const char *module_name(struct module *mod)
{
	return mod ? mod->name : "kernel";
}

/*
 * symbol_get(x) looks exported symbol x up at run time, taking a reference
 * on its owner (NULL if nobody exports it); symbol_put(x) drops it.
 */
void *__symbol_get(const char *symbol);
void __symbol_put(const char *symbol);

#define symbol_get(x)	((__typeof__(&x))(__symbol_get(__stringify(x))))
#define symbol_put(x)	__symbol_put(__stringify(x))

#endif /* _LINUX_MODULE_H */
