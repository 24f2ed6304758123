/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Section markers for code and data only needed while a module initialises
 * (the kernel frees .init.* once init has returned successfully) or only
 * when it is removed (.exit.*).
 */
#ifndef _LINUX_INIT_H
#define _LINUX_INIT_H

#include <linux/compiler.h>
#include <linux/types.h>
#include <linux/cache.h>

#define __init		__section(".init.text") __cold notrace
#define __initdata	__section(".init.data")
#define __initconst	__section(".init.rodata")
#define __exitdata	__section(".exit.data")
#define __exit_call	__used __section(".exitcall.exit")

/* In a module exit code is kept (it runs on unload), so not forced __used. */
#define __exit		__section(".exit.text") __cold notrace

typedef int (*initcall_t)(void);
typedef void (*exitcall_t)(void);

#endif /* _LINUX_INIT_H */
