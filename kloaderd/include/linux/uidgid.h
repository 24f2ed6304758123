/* SPDX-License-Identifier: GPL-2.0 */
/* Kernel-internal user and group ids (kuid_t, kgid_t), as Linux 6.6. */
#ifndef _LINUX_UIDGID_H
#define _LINUX_UIDGID_H

#include <linux/types.h>

#ifndef _KLOADER_UID_T
#define _KLOADER_UID_T
typedef unsigned int uid_t;
typedef unsigned int gid_t;
#endif

typedef struct {
	uid_t val;
} kuid_t;

typedef struct {
	gid_t val;
} kgid_t;

#define KUIDT_INIT(value) (kuid_t){ value }
#define KGIDT_INIT(value) (kgid_t){ value }
#define GLOBAL_ROOT_UID KUIDT_INIT(0)
#define GLOBAL_ROOT_GID KGIDT_INIT(0)

static inline uid_t __kuid_val(kuid_t uid) { return uid.val; }
static inline gid_t __kgid_val(kgid_t gid) { return gid.val; }

#endif /* _LINUX_UIDGID_H */
