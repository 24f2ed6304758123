/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Atomic counters, inline: gcc's __atomic builtins become x86's lock-prefixed
 * instructions, so nothing here calls into the kernel.
 */
#ifndef _LINUX_ATOMIC_H
#define _LINUX_ATOMIC_H

#include <linux/compiler.h>
#include <linux/types.h>

#define ATOMIC_INIT(i)	{ (i) }

static inline int atomic_read(const atomic_t *v)
{
	return __atomic_load_n(&v->counter, __ATOMIC_RELAXED);
}

static inline void atomic_set(atomic_t *v, int i)
{
	__atomic_store_n(&v->counter, i, __ATOMIC_RELAXED);
}

static inline int atomic_add_return(int i, atomic_t *v)
{
	return __atomic_add_fetch(&v->counter, i, __ATOMIC_SEQ_CST);
}

static inline int atomic_sub_return(int i, atomic_t *v)
{
	return __atomic_sub_fetch(&v->counter, i, __ATOMIC_SEQ_CST);
}

static inline void atomic_add(int i, atomic_t *v)	{ atomic_add_return(i, v); }
static inline void atomic_sub(int i, atomic_t *v)	{ atomic_sub_return(i, v); }
static inline void atomic_inc(atomic_t *v)		{ atomic_add_return(1, v); }
static inline void atomic_dec(atomic_t *v)		{ atomic_sub_return(1, v); }
static inline int atomic_inc_return(atomic_t *v)	{ return atomic_add_return(1, v); }
static inline int atomic_dec_return(atomic_t *v)	{ return atomic_sub_return(1, v); }
static inline bool atomic_dec_and_test(atomic_t *v)	{ return atomic_sub_return(1, v) == 0; }
static inline bool atomic_inc_and_test(atomic_t *v)	{ return atomic_add_return(1, v) == 0; }

static inline int atomic_xchg(atomic_t *v, int new)
{
	return __atomic_exchange_n(&v->counter, new, __ATOMIC_SEQ_CST);
}

/* Returns the old value; the swap happened if it equals @old. */
static inline int atomic_cmpxchg(atomic_t *v, int old, int new)
{
	__atomic_compare_exchange_n(&v->counter, &old, new, false,
				    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	return old;
}

static inline s64 atomic64_read(const atomic64_t *v)
{
	return __atomic_load_n(&v->counter, __ATOMIC_RELAXED);
}

static inline void atomic64_set(atomic64_t *v, s64 i)
{
	__atomic_store_n(&v->counter, i, __ATOMIC_RELAXED);
}

static inline s64 atomic64_add_return(s64 i, atomic64_t *v)
{
	return __atomic_add_fetch(&v->counter, i, __ATOMIC_SEQ_CST);
}

static inline void atomic64_inc(atomic64_t *v)		{ atomic64_add_return(1, v); }
static inline void atomic64_dec(atomic64_t *v)		{ atomic64_add_return(-1, v); }

#define atomic_long_read(v)		atomic64_read(v)
#define atomic_long_set(v, i)		atomic64_set(v, i)
#define atomic_long_inc(v)		atomic64_inc(v)
#define atomic_long_dec(v)		atomic64_dec(v)
#define atomic_long_add_return(i, v)	atomic64_add_return(i, v)

#endif /* _LINUX_ATOMIC_H */
