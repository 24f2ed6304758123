/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Completions: "wait until this has happened".  32 bytes, `done` at offset
 * 0; the emulated kernel keeps the waiters.
 */
#ifndef __LINUX_COMPLETION_H
#define __LINUX_COMPLETION_H

#include <linux/compiler.h>
#include <linux/list.h>
#include <linux/spinlock.h>
#include <linux/types.h>

struct swait_queue_head {
	raw_spinlock_t lock;
	struct list_head task_list;
};

struct completion {
	unsigned int done;		/* @0 */
	struct swait_queue_head wait;	/* @8 */
};

_Static_assert(sizeof(struct completion) == 32, "struct completion is 32 bytes");

#define COMPLETION_INITIALIZER(work)					\
	{ 0, { __RAW_SPIN_LOCK_UNLOCKED((work).wait.lock),		\
	       LIST_HEAD_INIT((work).wait.task_list) } }

#define DECLARE_COMPLETION(work)					\
	struct completion work = COMPLETION_INITIALIZER(work)
#define DECLARE_COMPLETION_ONSTACK(work)	DECLARE_COMPLETION(work)

static inline void init_completion(struct completion *x)
{
	x->done = 0;
	x->wait.lock = (raw_spinlock_t)__RAW_SPIN_LOCK_UNLOCKED(x->wait.lock);
	INIT_LIST_HEAD(&x->wait.task_list);
}

/* Reuse a completion after it has been completed (waiters must be gone). */
static inline void reinit_completion(struct completion *x)
{
	x->done = 0;
}

void wait_for_completion(struct completion *x);
/* 0 on timeout, else the jiffies left (at least 1). */
unsigned long __must_check wait_for_completion_timeout(struct completion *x,
							unsigned long timeout);
/* -ERESTARTSYS if interrupted, else 0. */
int __must_check wait_for_completion_interruptible(struct completion *x);
bool try_wait_for_completion(struct completion *x);
bool completion_done(struct completion *x);
void complete(struct completion *x);
void complete_all(struct completion *x);

#endif /* __LINUX_COMPLETION_H */
