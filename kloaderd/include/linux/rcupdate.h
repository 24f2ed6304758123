/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Preemptible RCU (CONFIG_PREEMPT_RCU) as modules see it: read-side
 * sections are a per-task count; call_rcu() callbacks run, and kfree_rcu()
 * frees, after a grace period, in softirq context; rcu_barrier() waits for
 * every one queued before it.
 */
#ifndef _LINUX_RCUPDATE_H
#define _LINUX_RCUPDATE_H

#include <linux/compiler.h>
#include <linux/stddef.h>

struct rcu_head {
	struct rcu_head *next;
	void (*func)(struct rcu_head *head);
};
typedef void (*rcu_callback_t)(struct rcu_head *head);

void __rcu_read_lock(void);
void __rcu_read_unlock(void);
void synchronize_rcu(void);
void synchronize_rcu_expedited(void);
void call_rcu(struct rcu_head *head, rcu_callback_t func);
void call_rcu_hurry(struct rcu_head *head, rcu_callback_t func);
void rcu_barrier(void);
void kvfree_call_rcu(struct rcu_head *head, rcu_callback_t func);

static inline void rcu_read_lock(void) { __rcu_read_lock(); }
static inline void rcu_read_unlock(void) { __rcu_read_unlock(); }

#define kfree_rcu(ptr, rhf) \
	kvfree_call_rcu(&((ptr)->rhf), (rcu_callback_t)(unsigned long)offsetof(typeof(*(ptr)), rhf))
#define kvfree_rcu_mightsleep(ptr) kvfree_call_rcu(NULL, (rcu_callback_t)(ptr))

#endif
