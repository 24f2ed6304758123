/* SPDX-License-Identifier: GPL-2.0 */
/* Task states and the scheduler calls a module may make. */
#ifndef _LINUX_SCHED_H
#define _LINUX_SCHED_H

#include <linux/limits.h>

#define TASK_RUNNING		0x00000000
#define TASK_INTERRUPTIBLE	0x00000001
#define TASK_UNINTERRUPTIBLE	0x00000002
#define TASK_WAKEKILL		0x00000100
#define TASK_NOLOAD		0x00000400
#define TASK_KILLABLE		(TASK_WAKEKILL | TASK_UNINTERRUPTIBLE)
#define TASK_IDLE		(TASK_UNINTERRUPTIBLE | TASK_NOLOAD)

#define MAX_SCHEDULE_TIMEOUT	LONG_MAX

void schedule(void);
long schedule_timeout(long timeout);

/*
 * The vermagic says "preempt": with full preemption cond_resched() is a
 * no-op, and might_sleep() only matters to debug kernels.
 */
#define cond_resched()		({ 0; })
#define might_sleep()		do { } while (0)

#endif /* _LINUX_SCHED_H */
