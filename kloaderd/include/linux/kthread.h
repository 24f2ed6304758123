/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel threads.  A thread a module starts must be stopped (kthread_stop)
 * before the module goes; one still running when the module is freed is
 * reported and killed.  A thread that holds a reference on its own module
 * must drop it with module_put_and_kthread_exit(), never module_put() and
 * return: the return lands in code a waiting removal may already have freed.
 */
#ifndef _LINUX_KTHREAD_H
#define _LINUX_KTHREAD_H

#include <linux/compiler.h>
#include <linux/err.h>
#include <linux/types.h>

struct task_struct;
struct module;

#define NUMA_NO_NODE	(-1)

__printf(4, 5)
struct task_struct *kthread_create_on_node(int (*threadfn)(void *data), void *data, int node,
					   const char namefmt[], ...);

#define kthread_create(threadfn, data, namefmt, arg...) \
	kthread_create_on_node(threadfn, data, NUMA_NO_NODE, namefmt, ##arg)

int wake_up_process(struct task_struct *tsk);

#define kthread_run(threadfn, data, namefmt, ...)			   \
({									   \
	struct task_struct *__k						   \
		= kthread_create(threadfn, data, namefmt, ## __VA_ARGS__); \
	if (!IS_ERR(__k))						   \
		wake_up_process(__k);					   \
	__k;								   \
})

int kthread_stop(struct task_struct *k);
bool kthread_should_stop(void);
void __noreturn kthread_exit(long result);
void __noreturn __module_put_and_kthread_exit(struct module *mod, long code);

#define module_put_and_kthread_exit(code) __module_put_and_kthread_exit(THIS_MODULE, code)

/* kthread workers: a thread running queued kthread_works one at a time. */
#include <linux/list.h>
#include <linux/spinlock.h>

struct kthread_work;
typedef void (*kthread_work_func_t)(struct kthread_work *work);

struct kthread_worker {
	unsigned int		flags;
	raw_spinlock_t		lock;
	struct list_head	work_list;
	struct list_head	delayed_work_list;
	struct task_struct	*task;
	struct kthread_work	*current_work;
};

struct kthread_work {
	struct list_head	node;
	kthread_work_func_t	func;
	struct kthread_worker	*worker;
	int			canceling;
};

static inline void kthread_init_work(struct kthread_work *work, kthread_work_func_t fn)
{
	__builtin_memset(work, 0, sizeof(*work));
	INIT_LIST_HEAD(&work->node);
	work->func = fn;
}

int kthread_worker_fn(void *worker_ptr);
__printf(2, 3)
struct kthread_worker *kthread_create_worker(unsigned int flags, const char namefmt[], ...);
bool kthread_queue_work(struct kthread_worker *worker, struct kthread_work *work);
void kthread_flush_work(struct kthread_work *work);
void kthread_flush_worker(struct kthread_worker *worker);
bool kthread_cancel_work_sync(struct kthread_work *work);
void kthread_destroy_worker(struct kthread_worker *worker);
void sched_set_fifo(struct task_struct *p);
void sched_set_fifo_low(struct task_struct *p);

#endif /* _LINUX_KTHREAD_H */
