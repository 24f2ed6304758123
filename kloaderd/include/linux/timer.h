/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Timers: a function run in softirq (atomic) context once jiffies reaches
 * `expires`.  Sleeping in it is "BUG: scheduling while atomic".  A module must
 * delete its timers (timer_delete_sync) before it goes: one still pending when
 * the module is freed is reported (ODEBUG) and disarmed.
 */
#ifndef _LINUX_TIMER_H
#define _LINUX_TIMER_H

#include <linux/compiler.h>
#include <linux/container_of.h>
#include <linux/jiffies.h>
#include <linux/types.h>

struct timer_list {
	struct hlist_node	entry;		/* entry.pprev != NULL while pending */
	unsigned long		expires;
	void			(*function)(struct timer_list *);
	u32			flags;
};

_Static_assert(__builtin_offsetof(struct timer_list, expires) == 16, "timer_list.expires @16");
_Static_assert(__builtin_offsetof(struct timer_list, function) == 24, "timer_list.function @24");
_Static_assert(sizeof(struct timer_list) == 40, "struct timer_list is 40 bytes");

#define TIMER_DEFERRABLE	0x00080000
#define TIMER_PINNED		0x00100000
#define TIMER_IRQSAFE		0x00200000

struct lock_class_key;

void init_timer_key(struct timer_list *timer, void (*func)(struct timer_list *),
		    unsigned int flags, const char *name, struct lock_class_key *key);

#define timer_setup(timer, callback, flags)	\
	init_timer_key((timer), (callback), (flags), #timer, NULL)

#define from_timer(var, callback_timer, timer_fieldname) \
	container_of(callback_timer, typeof(*var), timer_fieldname)

static inline int timer_pending(const struct timer_list *timer)
{
	return READ_ONCE(timer->entry.pprev) != NULL;
}

void add_timer(struct timer_list *timer);
int mod_timer(struct timer_list *timer, unsigned long expires);
int timer_delete(struct timer_list *timer);
int timer_delete_sync(struct timer_list *timer);
int timer_shutdown(struct timer_list *timer);
int timer_shutdown_sync(struct timer_list *timer);

static inline int del_timer(struct timer_list *timer)
{
	return timer_delete(timer);
}

static inline int del_timer_sync(struct timer_list *timer)
{
	return timer_delete_sync(timer);
}

#endif /* _LINUX_TIMER_H */
