/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Spinlocks: a 4-byte word (x86's qspinlock) the kernel's _raw_spin_*
 * functions operate on.  spin_lock_irqsave returns the saved flags, as Linux.
 */
#ifndef __LINUX_SPINLOCK_H
#define __LINUX_SPINLOCK_H

#include <linux/compiler.h>
#include <linux/types.h>

typedef struct qspinlock {
	atomic_t val;
} arch_spinlock_t;

typedef struct raw_spinlock {
	arch_spinlock_t raw_lock;
} raw_spinlock_t;

typedef struct spinlock {
	struct raw_spinlock rlock;
} spinlock_t;

_Static_assert(sizeof(spinlock_t) == 4, "spinlock_t is 4 bytes");

#define __ARCH_SPIN_LOCK_UNLOCKED	{ { 0 } }
#define __RAW_SPIN_LOCK_UNLOCKED(lockname)	{ .raw_lock = __ARCH_SPIN_LOCK_UNLOCKED }
#define __SPIN_LOCK_UNLOCKED(lockname)	{ .rlock = __RAW_SPIN_LOCK_UNLOCKED(lockname) }

#define DEFINE_RAW_SPINLOCK(x)	raw_spinlock_t x = __RAW_SPIN_LOCK_UNLOCKED(x)
#define DEFINE_SPINLOCK(x)	spinlock_t x = __SPIN_LOCK_UNLOCKED(x)

void _raw_spin_lock(raw_spinlock_t *lock) __acquires(lock);
void _raw_spin_unlock(raw_spinlock_t *lock) __releases(lock);
unsigned long _raw_spin_lock_irqsave(raw_spinlock_t *lock) __acquires(lock);
void _raw_spin_unlock_irqrestore(raw_spinlock_t *lock, unsigned long flags) __releases(lock);

#define raw_spin_lock_init(lock)	\
	do { *(lock) = (raw_spinlock_t)__RAW_SPIN_LOCK_UNLOCKED(lock); } while (0)
#define raw_spin_lock(lock)		_raw_spin_lock(lock)
#define raw_spin_unlock(lock)		_raw_spin_unlock(lock)
#define raw_spin_lock_irqsave(lock, flags)	\
	do { flags = _raw_spin_lock_irqsave(lock); } while (0)
#define raw_spin_unlock_irqrestore(lock, flags)	\
	_raw_spin_unlock_irqrestore(lock, flags)

#define spin_lock_init(lock)	\
	do { *(lock) = (spinlock_t)__SPIN_LOCK_UNLOCKED(lock); } while (0)

/* Type-checks that @lock is a spinlock_t before the irqsave macro uses it. */
static __always_inline raw_spinlock_t *spinlock_check(spinlock_t *lock)
{
	return &lock->rlock;
}

static __always_inline void spin_lock(spinlock_t *lock)
{
	_raw_spin_lock(&lock->rlock);
}

static __always_inline void spin_unlock(spinlock_t *lock)
{
	_raw_spin_unlock(&lock->rlock);
}

#define spin_lock_irqsave(lock, flags)					\
	do { flags = _raw_spin_lock_irqsave(spinlock_check(lock)); } while (0)

static __always_inline void spin_unlock_irqrestore(spinlock_t *lock, unsigned long flags)
{
	_raw_spin_unlock_irqrestore(&lock->rlock, flags);
}

#endif /* __LINUX_SPINLOCK_H */
