/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Module parameters.  Each is a 40-byte `struct kernel_param` in section
 * __param (name, owner, ops, perm, level, flags, arg); the kernel recognises
 * the parameter's type by the address of its ops (param_ops_int, ...), and
 * `.modinfo` carries "parmtype=name:type" and "parm=name:description".
 */
#ifndef _LINUX_MODULE_PARAMS_H
#define _LINUX_MODULE_PARAMS_H

#include <linux/compiler.h>
#include <linux/stringify.h>
#include <linux/types.h>
#include <linux/stat.h>
#include <linux/export.h>

/* In a module, parameters are named plainly ("foo", not "modname.foo"). */
#ifdef MODULE
#define MODULE_PARAM_PREFIX	/* empty */
#define __MODULE_INFO_PREFIX	/* empty */
#else
#define MODULE_PARAM_PREFIX	KBUILD_MODNAME "."
#define __MODULE_INFO_PREFIX	KBUILD_MODNAME "."
#endif

/* One "tag=info" string in .modinfo, under a file-unique name. */
#define __MODULE_INFO(tag, name, info)					\
	static const char __UNIQUE_ID(name)[]				\
		__used __section(".modinfo") __aligned(1)		\
		= __MODULE_INFO_PREFIX __stringify(tag) "=" info

#define __MODULE_PARM_TYPE(name, _type)					\
	__MODULE_INFO(parmtype, name##type, #name ":" _type)

/* One line of documentation for a parameter, shown by modinfo. */
#define MODULE_PARM_DESC(_parm, desc)					\
	__MODULE_INFO(parm, _parm, #_parm ":" desc)

struct kernel_param;

enum {
	KERNEL_PARAM_OPS_FL_NOARG = (1 << 0)
};

struct kernel_param_ops {
	unsigned int flags;
	int (*set)(const char *val, const struct kernel_param *kp);
	int (*get)(char *buffer, const struct kernel_param *kp);
	void (*free)(void *arg);
};

enum {
	KERNEL_PARAM_FL_UNSAFE	= (1 << 0),
	KERNEL_PARAM_FL_HWPARAM	= (1 << 1),
};

struct kparam_string {
	unsigned int maxlen;
	char *string;
};

struct kparam_array {
	unsigned int max;
	unsigned int elemsize;
	unsigned int *num;
	const struct kernel_param_ops *ops;
	void *elem;
};

struct kernel_param {
	const char *name;
	struct module *mod;
	const struct kernel_param_ops *ops;
	const u16 perm;
	s8 level;
	u8 flags;
	union {
		void *arg;
		const struct kparam_string *str;
		const struct kparam_array *arr;
	};
};

_Static_assert(sizeof(struct kernel_param) == 40, "struct kernel_param is 40 bytes");
_Static_assert(sizeof(struct kparam_string) == 16, "struct kparam_string is 16 bytes");
_Static_assert(sizeof(struct kparam_array) == 32, "struct kparam_array is 32 bytes");
_Static_assert(sizeof(struct kernel_param_ops) == 32, "struct kernel_param_ops is 32 bytes");

extern const struct kernel_param_ops param_ops_byte;
extern const struct kernel_param_ops param_ops_short;
extern const struct kernel_param_ops param_ops_ushort;
extern const struct kernel_param_ops param_ops_int;
extern const struct kernel_param_ops param_ops_uint;
extern const struct kernel_param_ops param_ops_long;
extern const struct kernel_param_ops param_ops_ulong;
extern const struct kernel_param_ops param_ops_ullong;
extern const struct kernel_param_ops param_ops_hexint;
extern const struct kernel_param_ops param_ops_bool;
extern const struct kernel_param_ops param_ops_invbool;
extern const struct kernel_param_ops param_ops_charp;
extern const struct kernel_param_ops param_ops_string;
extern const struct kernel_param_ops param_array_ops;

/*
 * Sysfs modes as Linux accepts them: octal, owner at least as permissive as
 * group and group as others, and never world-writable.
 */
#define VERIFY_OCTAL_PERMISSIONS(perm)					\
	(BUILD_BUG_ON_ZERO((perm) < 0) +				\
	 BUILD_BUG_ON_ZERO((perm) > 0777) +				\
	 BUILD_BUG_ON_ZERO((((perm) >> 6) & 4) < (((perm) >> 3) & 4)) +	\
	 BUILD_BUG_ON_ZERO((((perm) >> 3) & 4) < ((perm) & 4)) +	\
	 BUILD_BUG_ON_ZERO((((perm) >> 6) & 2) < (((perm) >> 3) & 2)) +	\
	 BUILD_BUG_ON_ZERO((perm) & 2) +				\
	 (perm))

#define __module_param_call(prefix, name, ops, arg, perm, level, flags)	\
	static const char __param_str_##name[] = prefix #name;		\
	static const struct kernel_param __param_##name			\
	__used __section("__param")					\
	__aligned(__alignof__(struct kernel_param))			\
	= { __param_str_##name, THIS_MODULE, ops,			\
	    VERIFY_OCTAL_PERMISSIONS(perm), level, flags, { arg } }

/* A parameter handled by the caller's own ops. */
#define module_param_cb(name, ops, arg, perm)				\
	__module_param_call(MODULE_PARAM_PREFIX, name, ops, arg, perm, -1, 0)

/* A compile error when @p does not point to a @type. */
#define __param_check(name, p, type)					\
	static inline type __always_unused *__check_##name(void) { return (p); }

#define param_check_byte(name, p)	__param_check(name, p, unsigned char)
#define param_check_short(name, p)	__param_check(name, p, short)
#define param_check_ushort(name, p)	__param_check(name, p, unsigned short)
#define param_check_int(name, p)	__param_check(name, p, int)
#define param_check_uint(name, p)	__param_check(name, p, unsigned int)
#define param_check_long(name, p)	__param_check(name, p, long)
#define param_check_ulong(name, p)	__param_check(name, p, unsigned long)
#define param_check_ullong(name, p)	__param_check(name, p, unsigned long long)
#define param_check_hexint(name, p)	__param_check(name, p, unsigned int)
#define param_check_charp(name, p)	__param_check(name, p, char *)
#define param_check_bool(name, p)	__param_check(name, p, bool)
#define param_check_invbool(name, p)	__param_check(name, p, bool)

/* Parameter @name stored in variable @value of kernel type @type. */
#define module_param_named(name, value, type, perm)			\
	param_check_##type(name, &(value));				\
	module_param_cb(name, &param_ops_##type, &value, perm);		\
	__MODULE_PARM_TYPE(name, #type)

#define module_param(name, type, perm)					\
	module_param_named(name, name, type, perm)

/* A string copied into the module's own buffer of @len bytes. */
#define module_param_string(name, string, len, perm)			\
	static const struct kparam_string __param_string_##name		\
		= { len, string };					\
	__module_param_call(MODULE_PARAM_PREFIX, name,			\
			    &param_ops_string,				\
			    .str = &__param_string_##name, perm, -1, 0);\
	__MODULE_PARM_TYPE(name, "string")

/*
 * A comma-separated list into @array; the number of values given is stored
 * in *@nump when @nump is not NULL.
 */
#define module_param_array_named(name, array, type, nump, perm)	\
	param_check_##type(name, &(array)[0]);				\
	static const struct kparam_array __param_arr_##name		\
	= { .max = sizeof(array) / sizeof((array)[0]), .num = nump,	\
	    .ops = &param_ops_##type,					\
	    .elemsize = sizeof((array)[0]), .elem = array };		\
	__module_param_call(MODULE_PARAM_PREFIX, name,			\
			    &param_array_ops,				\
			    .arr = &__param_arr_##name,			\
			    perm, -1, 0);				\
	__MODULE_PARM_TYPE(name, "array of " #type)

#define module_param_array(name, type, nump, perm)			\
	module_param_array_named(name, name, type, nump, perm)

#endif /* _LINUX_MODULE_PARAMS_H */
