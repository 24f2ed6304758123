/* SPDX-License-Identifier: GPL-2.0 */
/* Monotonic time in nanoseconds. */
#ifndef _LINUX_KTIME_H
#define _LINUX_KTIME_H

#include <linux/time64.h>
#include <linux/types.h>

typedef s64 ktime_t;

/* CLOCK_MONOTONIC now (GPL-only, as in Linux). */
ktime_t ktime_get(void);

static inline s64 ktime_to_ns(const ktime_t kt)	{ return kt; }
static inline s64 ktime_to_us(const ktime_t kt)	{ return kt / NSEC_PER_USEC; }
static inline s64 ktime_to_ms(const ktime_t kt)	{ return kt / NSEC_PER_MSEC; }
static inline ktime_t ns_to_ktime(u64 ns)	{ return ns; }
static inline ktime_t ms_to_ktime(u64 ms)	{ return ms * NSEC_PER_MSEC; }
static inline u64 ktime_get_ns(void)		{ return ktime_to_ns(ktime_get()); }

#define ktime_sub(lhs, rhs)	((lhs) - (rhs))
#define ktime_add(lhs, rhs)	((lhs) + (rhs))
#define ktime_add_ns(kt, nsval)	((kt) + (nsval))
#define ktime_compare(a, b)	((a) < (b) ? -1 : (a) > (b) ? 1 : 0)
#define ktime_after(a, b)	((a) > (b))
#define ktime_before(a, b)	((a) < (b))

static inline s64 ktime_us_delta(const ktime_t later, const ktime_t earlier)
{
	return ktime_to_us(ktime_sub(later, earlier));
}

static inline s64 ktime_ms_delta(const ktime_t later, const ktime_t earlier)
{
	return ktime_to_ms(ktime_sub(later, earlier));
}

#endif
