/* SPDX-License-Identifier: GPL-2.0 */
/* Hex conversion (Linux's include/linux/hex.h, lib/hexdump.c). */
#ifndef _LINUX_HEX_H
#define _LINUX_HEX_H

#include <linux/types.h>

int __must_check hex2bin(u8 *dst, const char *src, size_t count);
char *bin2hex(char *dst, const void *src, size_t count);

#endif
