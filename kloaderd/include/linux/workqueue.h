/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Work items: a function run later in a kworker, in process context (it may
 * sleep).  A module must flush or cancel its work before it goes: work still
 * queued when the module is freed is reported (ODEBUG) and dropped.
 */
#ifndef _LINUX_WORKQUEUE_H
#define _LINUX_WORKQUEUE_H

#include <linux/compiler.h>
#include <linux/container_of.h>
#include <linux/list.h>
#include <linux/timer.h>
#include <linux/types.h>

struct work_struct;
typedef void (*work_func_t)(struct work_struct *work);
struct workqueue_struct;

struct work_struct {
	atomic_long_t data;		/* bit 0: pending */
	struct list_head entry;
	work_func_t func;
};

_Static_assert(__builtin_offsetof(struct work_struct, func) == 24, "work_struct.func @24");
_Static_assert(sizeof(struct work_struct) == 32, "struct work_struct is 32 bytes");

struct delayed_work {
	struct work_struct work;
	struct timer_list timer;
	struct workqueue_struct *wq;
	int cpu;
};

_Static_assert(__builtin_offsetof(struct delayed_work, timer) == 32, "delayed_work.timer @32");
_Static_assert(__builtin_offsetof(struct delayed_work, wq) == 72, "delayed_work.wq @72");
_Static_assert(sizeof(struct delayed_work) == 88, "struct delayed_work is 88 bytes");

#define WORK_STRUCT_PENDING_BIT	0
#define WORK_CPU_UNBOUND	64
#define WQ_UNBOUND		(1 << 1)
#define WQ_FREEZABLE		(1 << 2)
#define WQ_MEM_RECLAIM		(1 << 3)
#define WQ_HIGHPRI		(1 << 4)
#define WQ_CPU_INTENSIVE	(1 << 5)
#define __WQ_ORDERED		(1 << 17)
#define __WQ_LEGACY		(1 << 18)
#define WQ_MAX_ACTIVE		512
#define WQ_DFL_ACTIVE		(WQ_MAX_ACTIVE / 2)

static inline struct delayed_work *to_delayed_work(struct work_struct *work)
{
	return container_of(work, struct delayed_work, work);
}

#define INIT_WORK(_work, _func)						\
	do {								\
		(_work)->data.counter = 0;				\
		INIT_LIST_HEAD(&(_work)->entry);			\
		(_work)->func = (_func);				\
	} while (0)

void delayed_work_timer_fn(struct timer_list *t);

#define INIT_DELAYED_WORK(_work, _func)					\
	do {								\
		INIT_WORK(&(_work)->work, (_func));			\
		init_timer_key(&(_work)->timer, delayed_work_timer_fn,	\
			       TIMER_IRQSAFE, NULL, NULL);		\
	} while (0)

#define work_pending(work)	((int)(READ_ONCE((work)->data.counter) & 1))
#define delayed_work_pending(w)	work_pending(&(w)->work)

extern struct workqueue_struct *system_wq;
extern struct workqueue_struct *system_highpri_wq;
extern struct workqueue_struct *system_long_wq;
extern struct workqueue_struct *system_unbound_wq;
extern struct workqueue_struct *system_freezable_wq;
extern struct workqueue_struct *system_power_efficient_wq;
extern struct workqueue_struct *system_freezable_power_efficient_wq;

__printf(1, 4) struct workqueue_struct *
alloc_workqueue(const char *fmt, unsigned int flags, int max_active, ...);
void destroy_workqueue(struct workqueue_struct *wq);
/* One item at a time, in queue order (max_active 0 means WQ_DFL_ACTIVE). */
#define alloc_ordered_workqueue(fmt, flags, args...)			\
	alloc_workqueue(fmt, WQ_UNBOUND | __WQ_ORDERED | (flags), 1, ##args)
#define create_singlethread_workqueue(name)				\
	alloc_ordered_workqueue("%s", __WQ_LEGACY | WQ_MEM_RECLAIM, name)

bool queue_work_on(int cpu, struct workqueue_struct *wq, struct work_struct *work);
bool queue_delayed_work_on(int cpu, struct workqueue_struct *wq, struct delayed_work *work,
			   unsigned long delay);
bool flush_work(struct work_struct *work);
bool cancel_work_sync(struct work_struct *work);
bool flush_delayed_work(struct delayed_work *dwork);
bool cancel_delayed_work(struct delayed_work *dwork);
bool cancel_delayed_work_sync(struct delayed_work *dwork);
void __flush_workqueue(struct workqueue_struct *wq);
#define flush_workqueue(wq)	__flush_workqueue(wq)

static inline bool queue_work(struct workqueue_struct *wq, struct work_struct *work)
{
	return queue_work_on(WORK_CPU_UNBOUND, wq, work);
}

static inline bool queue_delayed_work(struct workqueue_struct *wq, struct delayed_work *dwork,
				      unsigned long delay)
{
	return queue_delayed_work_on(WORK_CPU_UNBOUND, wq, dwork, delay);
}

static inline bool schedule_work(struct work_struct *work)
{
	return queue_work(system_wq, work);
}

static inline bool schedule_delayed_work(struct delayed_work *dwork, unsigned long delay)
{
	return queue_delayed_work(system_wq, dwork, delay);
}

#endif /* _LINUX_WORKQUEUE_H */
