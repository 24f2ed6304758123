/* SPDX-License-Identifier: GPL-2.0 */
#ifndef TYPECHECK_H_INCLUDED
#define TYPECHECK_H_INCLUDED

/* 1, with a compiler warning unless @x has type @type. */
#define typecheck(type, x) ({			\
	type __dummy;				\
	__typeof__(x) __dummy2;			\
	(void)(&__dummy == &__dummy2);		\
	1;					\
})

#endif
