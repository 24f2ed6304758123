/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Sleeping locks.  struct mutex is Linux's 32 bytes with the owner word at
 * offset 0 (0 when unlocked); the emulated kernel keeps the waiters.
 */
#ifndef __LINUX_MUTEX_H
#define __LINUX_MUTEX_H

#include <linux/compiler.h>
#include <linux/list.h>
#include <linux/spinlock.h>
#include <linux/types.h>

struct optimistic_spin_queue {
	atomic_t tail;
};

struct mutex {
	atomic_long_t owner;			/* @0 */
	raw_spinlock_t wait_lock;		/* @8 */
	struct optimistic_spin_queue osq;	/* @12 */
	struct list_head wait_list;		/* @16 */
};

_Static_assert(sizeof(struct mutex) == 32, "struct mutex is 32 bytes");

/* Lockdep's class key: empty without lockdep, but its address is passed. */
struct lock_class_key { };

#define __MUTEX_INITIALIZER(lockname)					\
	{ .owner = { 0 },						\
	  .wait_lock = __RAW_SPIN_LOCK_UNLOCKED(lockname.wait_lock),	\
	  .wait_list = LIST_HEAD_INIT(lockname.wait_list) }

#define DEFINE_MUTEX(mutexname)						\
	struct mutex mutexname = __MUTEX_INITIALIZER(mutexname)

void __mutex_init(struct mutex *lock, const char *name, struct lock_class_key *key);

#define mutex_init(mutex)						\
do {									\
	static struct lock_class_key __key;				\
	__mutex_init((mutex), #mutex, &__key);				\
} while (0)

static inline void mutex_destroy(struct mutex *lock) { (void)lock; }

void mutex_lock(struct mutex *lock);
int __must_check mutex_lock_interruptible(struct mutex *lock);
/* 1 if the mutex was taken, 0 if it is held by someone else. */
int mutex_trylock(struct mutex *lock);
void mutex_unlock(struct mutex *lock);
bool mutex_is_locked(struct mutex *lock);

#endif /* __LINUX_MUTEX_H */
