/* SPDX-License-Identifier: GPL-2.0 */
/* Device numbers: 12 bits of major, 20 of minor, in a 32-bit dev_t. */
#ifndef _LINUX_KDEV_T_H
#define _LINUX_KDEV_T_H

#include <linux/types.h>

typedef u32 dev_t;

#define MINORBITS	20
#define MINORMASK	((1U << MINORBITS) - 1)

#define MAJOR(dev)	((unsigned int) ((dev) >> MINORBITS))
#define MINOR(dev)	((unsigned int) ((dev) & MINORMASK))
#define MKDEV(ma, mi)	(((ma) << MINORBITS) | (mi))

#endif /* _LINUX_KDEV_T_H */
