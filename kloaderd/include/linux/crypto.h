/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The crypto API's registration side: struct crypto_alg with Linux 6.1's
 * x86-64 layout (384 bytes; cra_name at 56, cra_module at 376).
 */
#ifndef _LINUX_CRYPTO_H
#define _LINUX_CRYPTO_H

#include <linux/list.h>
#include <linux/types.h>

#define CRYPTO_ALG_TYPE_MASK		0x0000000f
#define CRYPTO_ALG_TYPE_CIPHER		0x00000001
#define CRYPTO_ALG_TYPE_SHASH		0x0000000e
#define CRYPTO_ALG_DEAD			0x00000020
#define CRYPTO_ALG_TESTED		0x00000400
#define CRYPTO_MAX_ALG_NAME		128

struct module;
struct crypto_tfm;
struct crypto_type;

struct crypto_alg {
	struct list_head cra_list;
	struct list_head cra_users;
	u32 cra_flags;
	unsigned int cra_blocksize;
	unsigned int cra_ctxsize;
	unsigned int cra_alignmask;
	int cra_priority;
	unsigned int cra_refcnt;
	char cra_name[CRYPTO_MAX_ALG_NAME];
	char cra_driver_name[CRYPTO_MAX_ALG_NAME];
	const struct crypto_type *cra_type;
	unsigned long cra_u[4];
	int (*cra_init)(struct crypto_tfm *tfm);
	void (*cra_exit)(struct crypto_tfm *tfm);
	void (*cra_destroy)(struct crypto_alg *alg);
	struct module *cra_module;
};

int crypto_register_alg(struct crypto_alg *alg);
void crypto_unregister_alg(struct crypto_alg *alg);
int crypto_register_algs(struct crypto_alg *algs, int count);
void crypto_unregister_algs(struct crypto_alg *algs, int count);

#endif
