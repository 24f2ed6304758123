/* SPDX-License-Identifier: GPL-2.0 */
/* Character set tables (fs/nls), Linux 6.1's x86-64 layout (64 bytes). */
#ifndef _LINUX_NLS_H
#define _LINUX_NLS_H

#include <linux/module.h>
#include <linux/types.h>

typedef u16 wchar_t;

struct nls_table {
	const char *charset;
	const char *alias;
	int (*uni2char)(wchar_t uni, unsigned char *out, int boundlen);
	int (*char2uni)(const unsigned char *rawstring, int boundlen, wchar_t *uni);
	const unsigned char *charset2lower;
	const unsigned char *charset2upper;
	struct module *owner;
	struct nls_table *next;
};

int __register_nls(struct nls_table *nls, struct module *owner);
int unregister_nls(struct nls_table *nls);
#define register_nls(nls) __register_nls((nls), THIS_MODULE)

#endif
