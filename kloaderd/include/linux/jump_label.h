/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Static keys (kernel/jump_label.c, kloaderd/kernel/jump_label.py): a
 * branch compiled as a NOP or a JMP, recorded in __jump_table, and patched
 * by the kernel when its key is switched.  The layout and the table format
 * are Linux's x86-64 ones: struct static_key is {atomic_t enabled; unsigned
 * long type}, a jump entry is {s32 code; s32 target; long key}, relative,
 * the key's bit 0 the branch's direction.
 */
#ifndef _LINUX_JUMP_LABEL_H
#define _LINUX_JUMP_LABEL_H

#include <linux/compiler.h>
#include <linux/types.h>

struct static_key {
	atomic_t enabled;
	unsigned long type;		/* JUMP_TYPE_TRUE: defined true */
};

struct static_key_true {
	struct static_key key;
};

struct static_key_false {
	struct static_key key;
};

#define JUMP_TYPE_FALSE		0UL
#define JUMP_TYPE_TRUE		1UL

#define STATIC_KEY_INIT_TRUE	{ .enabled = { 1 }, .type = JUMP_TYPE_TRUE }
#define STATIC_KEY_INIT_FALSE	{ .enabled = { 0 }, .type = JUMP_TYPE_FALSE }

#define DEFINE_STATIC_KEY_TRUE(name) \
	struct static_key_true name = { .key = STATIC_KEY_INIT_TRUE }
#define DEFINE_STATIC_KEY_FALSE(name) \
	struct static_key_false name = { .key = STATIC_KEY_INIT_FALSE }
#define DECLARE_STATIC_KEY_TRUE(name)	extern struct static_key_true name
#define DECLARE_STATIC_KEY_FALSE(name)	extern struct static_key_false name

bool static_key_slow_inc(struct static_key *key);
void static_key_slow_dec(struct static_key *key);
void static_key_enable(struct static_key *key);
void static_key_disable(struct static_key *key);
int static_key_count(struct static_key *key);

#define static_key_enabled(x)	(static_key_count(&(x)->key) > 0)

/* One entry per site: where it is, where it jumps, its key (+ direction). */
#define __JUMP_TABLE_ENTRY						\
	".pushsection __jump_table, \"aw\"\n\t"				\
	".balign 8\n\t"							\
	".long 1b - .\n\t"						\
	".long %l[l_yes] - .\n\t"					\
	".quad %c0 + %c1 - .\n\t"					\
	".popsection\n\t"

/* A 5-byte NOP: false until the kernel makes it a JMP. */
static __always_inline bool arch_static_branch(struct static_key *key, bool branch)
{
	asm goto("1: .byte 0x0f,0x1f,0x44,0x00,0x00\n\t" __JUMP_TABLE_ENTRY
		 : : "i" (key), "i" (branch) : : l_yes);
	return false;
l_yes:
	return true;
}

/* A JMP (2 or 5 bytes, as the assembler chose): true until made a NOP. */
static __always_inline bool arch_static_branch_jump(struct static_key *key, bool branch)
{
	asm goto("1: jmp %l[l_yes]\n\t" __JUMP_TABLE_ENTRY
		 : : "i" (key), "i" (branch) : : l_yes);
	return false;
l_yes:
	return true;
}

#define static_branch_likely(x)						\
({									\
	bool branch;							\
	if (__builtin_types_compatible_p(typeof(*x), struct static_key_true)) \
		branch = !arch_static_branch(&(x)->key, true);		\
	else								\
		branch = !arch_static_branch_jump(&(x)->key, true);	\
	__builtin_expect(branch, 1);					\
})

#define static_branch_unlikely(x)					\
({									\
	bool branch;							\
	if (__builtin_types_compatible_p(typeof(*x), struct static_key_true)) \
		branch = arch_static_branch_jump(&(x)->key, false);	\
	else								\
		branch = arch_static_branch(&(x)->key, false);		\
	__builtin_expect(branch, 0);					\
})

#define static_branch_inc(x)		static_key_slow_inc(&(x)->key)
#define static_branch_dec(x)		static_key_slow_dec(&(x)->key)
#define static_branch_enable(x)		static_key_enable(&(x)->key)
#define static_branch_disable(x)	static_key_disable(&(x)->key)

#endif /* _LINUX_JUMP_LABEL_H */
