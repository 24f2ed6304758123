/* SPDX-License-Identifier: GPL-2.0 */
/* The kernel's lib/string.c, plus the allocating helpers of mm/util.c. */
#ifndef _LINUX_STRING_H_
#define _LINUX_STRING_H_

#include <linux/compiler.h>
#include <linux/types.h>
#include <linux/gfp.h>

void *memcpy(void *dest, const void *src, size_t n);
void *memset(void *s, int c, size_t n);
void *memmove(void *dest, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t maxlen);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strcpy(char *dest, const char *src);
/* Copies at most size-1 bytes, always terminates; -E2BIG if truncated. */
ssize_t strscpy(char *dest, const char *src, size_t size);
char *strcat(char *dest, const char *src);
char *strchr(const char *s, int c);
char *strrchr(const char *s, int c);
char *strstr(const char *haystack, const char *needle);

char *kstrdup(const char *s, gfp_t gfp) __malloc;
void *kmemdup(const void *src, size_t len, gfp_t gfp) __alloc_size(2);

#endif /* _LINUX_STRING_H_ */
