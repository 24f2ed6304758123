/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Copies between kernel and user memory.  The result is the number of bytes
 * NOT copied (0 on success); a driver turns anything else into -EFAULT.
 * kloader's copies are out of line (_copy_to_user / _copy_from_user, as
 * Linux without INLINE_COPY_*); user memory is reachable only through them.
 */
#ifndef _LINUX_UACCESS_H
#define _LINUX_UACCESS_H

#include <linux/compiler.h>
#include <linux/types.h>
#include <linux/errno.h>

unsigned long _copy_to_user(void __user *to, const void *from, unsigned long n);
unsigned long _copy_from_user(void *to, const void __user *from, unsigned long n);
unsigned long clear_user(void __user *to, unsigned long n);

static __always_inline unsigned long __must_check
copy_to_user(void __user *to, const void *from, unsigned long n)
{
	return _copy_to_user(to, from, n);
}

static __always_inline unsigned long __must_check
copy_from_user(void *to, const void __user *from, unsigned long n)
{
	return _copy_from_user(to, from, n);
}

#define put_user(x, ptr)						\
({									\
	__typeof__(*(ptr)) __pu_val = (x);				\
	copy_to_user((ptr), &__pu_val, sizeof(*(ptr))) ? -EFAULT : 0;	\
})

#define get_user(x, ptr)						\
({									\
	__typeof__(*(ptr)) __gu_val;					\
	int __gu_err = copy_from_user(&__gu_val, (ptr), sizeof(*(ptr))) ? -EFAULT : 0; \
	(x) = __gu_err ? (__typeof__(*(ptr)))0 : __gu_val;		\
	__gu_err;							\
})

#endif /* _LINUX_UACCESS_H */
