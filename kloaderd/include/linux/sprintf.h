/* SPDX-License-Identifier: GPL-2.0 */
/* Formatting into buffers: the kernel's lib/vsprintf.c, with %p extensions. */
#ifndef _LINUX_KERNEL_SPRINTF_H_
#define _LINUX_KERNEL_SPRINTF_H_

#include <linux/compiler.h>
#include <linux/stdarg.h>
#include <linux/types.h>

__printf(2, 3) int sprintf(char *buf, const char *fmt, ...);
__printf(3, 4) int snprintf(char *buf, size_t size, const char *fmt, ...);
__printf(3, 0) int vsnprintf(char *buf, size_t size, const char *fmt, va_list args);
__printf(3, 4) int scnprintf(char *buf, size_t size, const char *fmt, ...);

#endif
