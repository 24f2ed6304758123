/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The grab-bag most modules include: types, printk, the sprintf family,
 * kstrto*, min/max, container_of, ARRAY_SIZE and the rounding helpers.
 */
#ifndef _LINUX_KERNEL_H
#define _LINUX_KERNEL_H

#include <linux/compiler.h>
#include <linux/types.h>
#include <linux/stddef.h>
#include <linux/stdarg.h>
#include <linux/limits.h>
#include <linux/stringify.h>
#include <linux/container_of.h>
#include <linux/minmax.h>
#include <linux/printk.h>
#include <linux/sprintf.h>
#include <linux/kstrtox.h>
#include <linux/bug.h>
#include <linux/err.h>
#include <linux/sched.h>
#include <linux/typecheck.h>

/* The number of elements of an array (an error when given a pointer). */
#define ARRAY_SIZE(arr)	(sizeof(arr) / sizeof((arr)[0]) + __must_be_array(arr))

#define __ALIGN_KERNEL_MASK(x, mask)	(((x) + (mask)) & ~(mask))
#define __ALIGN_KERNEL(x, a)		__ALIGN_KERNEL_MASK(x, (__typeof__(x))(a) - 1)
#define ALIGN(x, a)		__ALIGN_KERNEL((x), (a))
#define ALIGN_DOWN(x, a)	__ALIGN_KERNEL((x) - ((a) - 1), (a))
#define IS_ALIGNED(x, a)	(((x) & ((__typeof__(x))(a) - 1)) == 0)
#define PTR_ALIGN(p, a)		((__typeof__(p))ALIGN((unsigned long)(p), (a)))

#define __round_mask(x, y)	((__typeof__(x))((y) - 1))
#define round_up(x, y)		((((x) - 1) | __round_mask(x, y)) + 1)
#define round_down(x, y)	((x) & ~__round_mask(x, y))
#define DIV_ROUND_UP(n, d)	(((n) + (d) - 1) / (d))
#define DIV_ROUND_UP_ULL(ll, d)	((unsigned long long)(((ll) + (d) - 1) / (d)))
#define DIV_ROUND_CLOSEST(x, divisor) ({				\
	__typeof__(x) __x = (x);					\
	__typeof__(divisor) __d = (divisor);				\
	(((__typeof__(x))-1) > 0 || ((__typeof__(divisor))-1) > 0 ||	\
	 (((__x) > 0) == ((__d) > 0))) ?				\
		(((__x) + ((__d) / 2)) / (__d)) :			\
		(((__x) - ((__d) / 2)) / (__d));			\
})
#define roundup(x, y) ({ __typeof__(y) __y = (y); (((x) + (__y - 1)) / __y) * __y; })
#define rounddown(x, y) ({ __typeof__(x) __x = (x); __x - (__x % (y)); })

#define abs(x) ({ __typeof__(x) __abs_x = (x); __abs_x < 0 ? -__abs_x : __abs_x; })

#define upper_32_bits(n)	((u32)(((n) >> 16) >> 16))
#define lower_32_bits(n)	((u32)((n) & 0xffffffff))
#define upper_16_bits(n)	((u16)((n) >> 16))
#define lower_16_bits(n)	((u16)((n) & 0xffff))

#endif /* _LINUX_KERNEL_H */
