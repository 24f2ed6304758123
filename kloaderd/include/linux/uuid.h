/* SPDX-License-Identifier: GPL-2.0 */
/* UUIDs and GUIDs (Linux's include/linux/uuid.h). */
#ifndef _LINUX_UUID_H
#define _LINUX_UUID_H

#include <linux/string.h>
#include <linux/types.h>

#define UUID_SIZE 16
#define UUID_STRING_LEN 36

typedef struct {
	__u8 b[UUID_SIZE];
} guid_t;

typedef struct {
	__u8 b[UUID_SIZE];
} uuid_t;

extern const guid_t guid_null;
extern const uuid_t uuid_null;

static inline bool guid_equal(const guid_t *u1, const guid_t *u2) { return memcmp(u1, u2, sizeof(guid_t)) == 0; }
static inline bool uuid_equal(const uuid_t *u1, const uuid_t *u2) { return memcmp(u1, u2, sizeof(uuid_t)) == 0; }
static inline bool uuid_is_null(const uuid_t *uuid) { return uuid_equal(uuid, &uuid_null); }
static inline bool guid_is_null(const guid_t *guid) { return guid_equal(guid, &guid_null); }

void generate_random_uuid(unsigned char uuid[16]);
void generate_random_guid(unsigned char guid[16]);
void guid_gen(guid_t *u);
void uuid_gen(uuid_t *u);
bool __must_check uuid_is_valid(const char *uuid);
int guid_parse(const char *uuid, guid_t *u);
int uuid_parse(const char *uuid, uuid_t *u);

#endif
