/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel's tick counter.  HZ is 250 as in the common distribution
 * configs; jiffies starts five minutes before wrapping (INITIAL_JIFFIES) so
 * code that compares jiffies without time_after() breaks early, as in Linux.
 */
#ifndef _LINUX_JIFFIES_H
#define _LINUX_JIFFIES_H

#include <linux/compiler.h>
#include <linux/limits.h>
#include <linux/time64.h>
#include <linux/typecheck.h>
#include <linux/types.h>

#define HZ		250
#define USER_HZ		100

#define INITIAL_JIFFIES ((unsigned long)(unsigned int)(-300 * HZ))
#define MAX_JIFFY_OFFSET ((LONG_MAX >> 1) - 1)

extern unsigned long volatile jiffies;

/* Wrap-safe comparisons: true if time a is after time b. */
#define time_after(a, b)		\
	(typecheck(unsigned long, a) &&	\
	 typecheck(unsigned long, b) &&	\
	 ((long)((b) - (a)) < 0))
#define time_before(a, b)	time_after(b, a)
#define time_after_eq(a, b)		\
	(typecheck(unsigned long, a) &&	\
	 typecheck(unsigned long, b) &&	\
	 ((long)((a) - (b)) >= 0))
#define time_before_eq(a, b)	time_after_eq(b, a)
#define time_in_range(a, b, c)	(time_after_eq(a, b) && time_before_eq(a, c))
#define time_in_range_open(a, b, c) (time_after_eq(a, b) && time_before(a, c))

#define time_after64(a, b)		\
	(typecheck(__u64, a) &&		\
	 typecheck(__u64, b) &&		\
	 ((__s64)((b) - (a)) < 0))
#define time_before64(a, b)	time_after64(b, a)
#define time_after_eq64(a, b)		\
	(typecheck(__u64, a) &&		\
	 typecheck(__u64, b) &&		\
	 ((__s64)((a) - (b)) >= 0))
#define time_before_eq64(a, b)	time_after_eq64(b, a)

#define time_is_before_jiffies(a)	time_after(jiffies, a)
#define time_is_after_jiffies(a)	time_before(jiffies, a)
#define time_is_before_eq_jiffies(a)	time_after_eq(jiffies, a)
#define time_is_after_eq_jiffies(a)	time_before_eq(jiffies, a)

/* HZ divides 1000 and 1000000, so these are exact roundings up. */
static inline unsigned long msecs_to_jiffies(const unsigned int m)
{
	if ((int)m < 0)
		return MAX_JIFFY_OFFSET;
	return (m + (MSEC_PER_SEC / HZ) - 1) / (MSEC_PER_SEC / HZ);
}

static inline unsigned long usecs_to_jiffies(const unsigned int u)
{
	if ((int)u < 0)
		return MAX_JIFFY_OFFSET;
	return (u + (USEC_PER_SEC / HZ) - 1) / (USEC_PER_SEC / HZ);
}

static inline unsigned int jiffies_to_msecs(const unsigned long j)
{
	return (MSEC_PER_SEC / HZ) * j;
}

static inline unsigned int jiffies_to_usecs(const unsigned long j)
{
	return (USEC_PER_SEC / HZ) * j;
}

#endif /* _LINUX_JIFFIES_H */
