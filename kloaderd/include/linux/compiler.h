/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kloader: the compiler attributes and helpers modules expect from
 * <linux/compiler.h> / <linux/compiler_attributes.h>, spelled as Linux's.
 */
#ifndef _LINUX_COMPILER_H
#define _LINUX_COMPILER_H

#define __section(s)		__attribute__((__section__(s)))
#define __used			__attribute__((__used__))
#define __maybe_unused		__attribute__((__unused__))
#define __always_unused		__attribute__((__unused__))
#define __aligned(x)		__attribute__((__aligned__(x)))
#define __packed		__attribute__((__packed__))
#define __weak			__attribute__((__weak__))
#define __alias(s)		__attribute__((__alias__(#s)))
#define __copy(s)		__attribute__((__copy__(s)))
#define __cold			__attribute__((__cold__))
#define __noreturn		__attribute__((__noreturn__))
#define __pure			__attribute__((__pure__))
#define __const_fn		__attribute__((__const__))
#define __always_inline		inline __attribute__((__always_inline__))
#define noinline		__attribute__((__noinline__))
#define __must_check		__attribute__((__warn_unused_result__))
#define __printf(a, b)		__attribute__((__format__(printf, a, b)))
#define __scanf(a, b)		__attribute__((__format__(scanf, a, b)))
#define __visible		__attribute__((__externally_visible__))
#define __malloc		__attribute__((__malloc__))
#define __alloc_size(x, ...)	__attribute__((__alloc_size__(x, ## __VA_ARGS__)))
#define __fallthrough		__attribute__((__fallthrough__))
#define fallthrough		__fallthrough
#define notrace			__attribute__((__no_instrument_function__))
#define __noclone		__attribute__((__noclone__))
#define __cacheline_aligned	__aligned(64)
#define ____cacheline_aligned	__aligned(64)
#define __cacheline_aligned_in_smp __aligned(64)

/* Sparse annotations: meaningless to gcc, kept so Linux code compiles. */
#define __user
#define __kernel
#define __iomem
#define __percpu
#define __rcu
#define __force
#define __bitwise
#define __must_hold(x)
#define __acquires(x)
#define __releases(x)

#define likely(x)		__builtin_expect(!!(x), 1)
#define unlikely(x)		__builtin_expect(!!(x), 0)

#define barrier()		__asm__ __volatile__("" : : : "memory")
#define unreachable()		__builtin_unreachable()

#define ___PASTE(a, b)		a##b
#define __PASTE(a, b)		___PASTE(a, b)
/* A file-unique identifier, as Linux's: __UNIQUE_ID_<prefix><counter>. */
#define __UNIQUE_ID(prefix)	__PASTE(__UNIQUE_ID_, __PASTE(prefix, __COUNTER__))

/*
 * Keep a reference to @sym in @section so the compiler and linker cannot
 * drop it (Linux uses this for module_init/module_exit).
 */
#define ___ADDRESSABLE(sym, __attrs)					\
	static void * __used __attrs					\
	__UNIQUE_ID(__PASTE(__addressable_, sym)) = (void *)&sym
#define __ADDRESSABLE(sym)	___ADDRESSABLE(sym, __section(".discard.addressable"))

/* Forces a single access: the compiler may neither merge nor tear it. */
#define READ_ONCE(x)		(*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, val)	do { *(volatile __typeof__(x) *)&(x) = (val); } while (0)

/* Non-zero (and of type int) when @x is an integer constant expression. */
#define __is_constexpr(x)						\
	(sizeof(int) == sizeof(*(8 ? ((void *)((long)(x) * 0l)) : (int *)8)))

#define __same_type(a, b)	__builtin_types_compatible_p(__typeof__(a), __typeof__(b))
#define __must_be_array(a)	BUILD_BUG_ON_ZERO(__same_type((a), &(a)[0]))

#define BUILD_BUG_ON_ZERO(e)	((int)(sizeof(struct { int:(-!!(e)); })))
#define BUILD_BUG_ON(cond)	_Static_assert(!(cond), "BUILD_BUG_ON failed: " #cond)
#define static_assert(expr, ...) _Static_assert(expr, #expr)

#endif /* _LINUX_COMPILER_H */
