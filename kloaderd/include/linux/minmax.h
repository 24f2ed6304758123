/* SPDX-License-Identifier: GPL-2.0 */
/*
 * min()/max() evaluate each argument once and, like Linux's, refuse
 * arguments of different types (compare the addresses of two temporaries:
 * gcc warns "comparison of distinct pointer types"); min_t()/max_t() cast.
 */
#ifndef _LINUX_MINMAX_H
#define _LINUX_MINMAX_H

#include <linux/compiler.h>

#define __cmp_once(op, x, y, ux, uy) ({				\
	__typeof__(x) ux = (x);						\
	__typeof__(y) uy = (y);						\
	(void)(&ux == &uy);						\
	ux op uy ? ux : uy; })

#define min(x, y)	__cmp_once(<, x, y, __UNIQUE_ID(min_x_), __UNIQUE_ID(min_y_))
#define max(x, y)	__cmp_once(>, x, y, __UNIQUE_ID(max_x_), __UNIQUE_ID(max_y_))
#define min3(x, y, z)	min((__typeof__(x))min(x, y), z)
#define max3(x, y, z)	max((__typeof__(x))max(x, y), z)
#define min_t(type, x, y)	min((type)(x), (type)(y))
#define max_t(type, x, y)	max((type)(x), (type)(y))
#define min_not_zero(x, y) ({						\
	__typeof__(x) __mnz_x = (x);					\
	__typeof__(y) __mnz_y = (y);					\
	__mnz_x == 0 ? __mnz_y : (__mnz_y == 0 ? __mnz_x : min(__mnz_x, __mnz_y)); })

/* @val limited to [@lo, @hi]; all three must have the same type. */
#define clamp(val, lo, hi)	min((__typeof__(val))max(val, lo), hi)
#define clamp_t(type, val, lo, hi)	min_t(type, max_t(type, val, lo), hi)
#define clamp_val(val, lo, hi)	clamp_t(__typeof__(val), val, lo, hi)

#define swap(a, b) \
	do { __typeof__(a) __tmp = (a); (a) = (b); (b) = __tmp; } while (0)

#endif
