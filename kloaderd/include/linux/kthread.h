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

#endif /* _LINUX_KTHREAD_H */
