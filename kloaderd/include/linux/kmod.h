/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Module autoloading from module code, as Linux's <linux/kmod.h>:
 * request_module("fs-%s", name) asks modprobe for a module and sleeps until
 * it has run; it returns 0, a negative errno, or modprobe's wait status.
 * try_then_request_module(x, ...) evaluates x, and if it is 0/NULL requests
 * the module and evaluates x again; symbol_request(x) is that for symbol_get.
 */
#ifndef _LINUX_KMOD_H
#define _LINUX_KMOD_H

#include <linux/compiler.h>
#include <linux/module.h>
#include <linux/stringify.h>
#include <linux/types.h>

__printf(2, 3)
int __request_module(bool wait, const char *name, ...);

#define request_module(mod...) __request_module(true, mod)
#define request_module_nowait(mod...) __request_module(false, mod)
#define try_then_request_module(x, mod...) \
	((x) ?: (__request_module(true, mod), (x)))

#define symbol_request(x) try_then_request_module(symbol_get(x), "symbol:" __stringify(x))

#endif /* _LINUX_KMOD_H */
