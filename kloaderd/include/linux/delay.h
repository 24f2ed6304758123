/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Busy-waiting (udelay, ndelay, mdelay) and sleeping (msleep, usleep_range).
 * Constant delays go through __const_udelay with x86's scaled argument
 * (usecs * 0x10c7 = usecs * 2^32 / 10^6), others through __udelay.
 */
#ifndef _LINUX_DELAY_H
#define _LINUX_DELAY_H

#include <linux/compiler.h>
#include <linux/sched.h>
#include <linux/types.h>

#define MAX_UDELAY_MS	5

void __udelay(unsigned long usecs);
void __const_udelay(unsigned long xloops);

#define udelay(n)							\
	({								\
		if (__builtin_constant_p(n))				\
			__const_udelay((n) * 0x10c7ul);			\
		else							\
			__udelay(n);					\
	})

#define ndelay(n)							\
	({								\
		if (__builtin_constant_p(n))				\
			__const_udelay((n) * 5ul);			\
		else							\
			__udelay(((n) + 999) / 1000);			\
	})

#define mdelay(n)							\
	({								\
		unsigned long __ms = (n);				\
		while (__ms--)						\
			udelay(1000);					\
	})

void msleep(unsigned int msecs);
unsigned long msleep_interruptible(unsigned int msecs);
void usleep_range_state(unsigned long min, unsigned long max, unsigned int state);

static inline void usleep_range(unsigned long min, unsigned long max)
{
	usleep_range_state(min, max, TASK_UNINTERRUPTIBLE);
}

static inline void usleep_idle_range(unsigned long min, unsigned long max)
{
	usleep_range_state(min, max, TASK_IDLE);
}

static inline void ssleep(unsigned int seconds)
{
	msleep(seconds * 1000);
}

/* The right primitive for the length, as Documentation/timers suggests. */
static inline void fsleep(unsigned long usecs)
{
	if (usecs <= 10)
		udelay(usecs);
	else if (usecs <= 20000)
		usleep_range(usecs, 2 * usecs);
	else
		msleep((usecs + 999) / 1000);
}

#endif /* _LINUX_DELAY_H */
