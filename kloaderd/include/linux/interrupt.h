/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tasklets: a function run soon in softirq (atomic) context.  try_module_get
 * and module_put are safe here, as the FAQ says; sleeping is not.
 */
#ifndef _LINUX_INTERRUPT_H
#define _LINUX_INTERRUPT_H

#include <linux/compiler.h>
#include <linux/container_of.h>
#include <linux/types.h>

struct tasklet_struct {
	struct tasklet_struct *next;
	unsigned long state;		/* bit 0: scheduled, bit 1: running */
	atomic_t count;
	bool use_callback;
	union {
		void (*func)(unsigned long data);
		void (*callback)(struct tasklet_struct *t);
	};
	unsigned long data;
};

_Static_assert(__builtin_offsetof(struct tasklet_struct, func) == 24, "tasklet.func @24");
_Static_assert(sizeof(struct tasklet_struct) == 40, "struct tasklet_struct is 40 bytes");

#define TASKLET_STATE_SCHED	0
#define TASKLET_STATE_RUN	1

#define from_tasklet(var, callback_tasklet, tasklet_fieldname)	\
	container_of(callback_tasklet, typeof(*var), tasklet_fieldname)

void tasklet_init(struct tasklet_struct *t, void (*func)(unsigned long), unsigned long data);
void tasklet_setup(struct tasklet_struct *t, void (*callback)(struct tasklet_struct *));
void __tasklet_schedule(struct tasklet_struct *t);
void tasklet_kill(struct tasklet_struct *t);

static inline void tasklet_schedule(struct tasklet_struct *t)
{
	if (!__atomic_fetch_or(&t->state, 1UL << TASKLET_STATE_SCHED, __ATOMIC_SEQ_CST)
	    & (1UL << TASKLET_STATE_SCHED))
		__tasklet_schedule(t);
}

#endif /* _LINUX_INTERRUPT_H */
