/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __LINUX_CACHE_H
#define __LINUX_CACHE_H

#include <linux/compiler.h>

#define L1_CACHE_BYTES		64
#define SMP_CACHE_BYTES		L1_CACHE_BYTES

/* Data mostly read: grouped apart so writers do not bounce its cache lines. */
#define __read_mostly		__section(".data..read_mostly")
/* Written during init, read-only once init has returned. */
#define __ro_after_init		__section(".data..ro_after_init")

#endif
