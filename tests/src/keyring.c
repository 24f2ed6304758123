// SPDX-License-Identifier: GPL-2.0
/* Keyrings, for tests/test_keyrings.py: a private keyring handed to an
 * override credential as its thread keyring, as dns_resolver, cifs and
 * nfsv4 make theirs; what keyring_alloc refuses; a keyring revoked and
 * put.  At exit the keyring is revoked and the credential put (which
 * puts the keyring), unless leak=1: then the keyring is left alive. */
#include <linux/module.h>
#include <linux/init.h>
#include <linux/cred.h>
#include <linux/key.h>
#include <linux/key-type.h>
#include <linux/err.h>
#include <linux/sched/task.h>
#include <linux/version.h>
#include <uapi/linux/keyctl.h>
MODULE_LICENSE("GPL");

static int leak;
module_param(leak, int, 0444);
static struct cred *cred;
static struct key *kept;

#define PERM ((KEY_POS_ALL & ~KEY_POS_SETATTR) | KEY_USR_VIEW | KEY_USR_READ)

static int __init keyring_test_init(void)
{
	struct key *empty, *revoked, *keyring;

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
	cred = prepare_kernel_cred(&init_task);
#else
	cred = prepare_kernel_cred(NULL);
#endif
	if (!cred)
		return -ENOMEM;
	pr_info("keyring_test: cred keyrings %d, jit %d\n",
		!!cred->thread_keyring + !!cred->session_keyring, cred->jit_keyring);
	empty = keyring_alloc("", GLOBAL_ROOT_UID, GLOBAL_ROOT_GID, cred, PERM,
			      KEY_ALLOC_NOT_IN_QUOTA, NULL, NULL);
	pr_info("keyring_test: empty description %ld\n", PTR_ERR(empty));

	revoked = keyring_alloc(".kloader_revoked", GLOBAL_ROOT_UID, GLOBAL_ROOT_GID, cred, PERM,
				KEY_ALLOC_IN_QUOTA, NULL, NULL);
	if (IS_ERR(revoked))
		return PTR_ERR(revoked);
	key_revoke(revoked);
	pr_info("keyring_test: revoked %d, in quota %d\n", test_bit(KEY_FLAG_REVOKED, &revoked->flags),
		test_bit(KEY_FLAG_IN_QUOTA, &revoked->flags));
	key_put(revoked);
	key_put(NULL);

	keyring = keyring_alloc(".kloader_test", GLOBAL_ROOT_UID, GLOBAL_ROOT_GID, cred, PERM,
				KEY_ALLOC_NOT_IN_QUOTA, NULL, NULL);
	if (IS_ERR(keyring)) {
		put_cred(cred);
		return PTR_ERR(keyring);
	}
	pr_info("keyring_test: \"%s\" of type %s, serial above 2 %d, usage %d, positive %d, in quota %d, perm %08x\n",
		keyring->description, keyring->type->name, key_serial(keyring) > 2,
		refcount_read(&keyring->usage), key_is_positive(keyring),
		test_bit(KEY_FLAG_IN_QUOTA, &keyring->flags), keyring->perm);
	set_bit(KEY_FLAG_ROOT_CAN_CLEAR, &keyring->flags);
	if (leak) {
		kept = keyring;
		return 0;
	}
	cred->thread_keyring = keyring;
	cred->jit_keyring = KEY_REQKEY_DEFL_THREAD_KEYRING;
	return 0;
}

static void __exit keyring_test_exit(void)
{
	if (leak) {
		put_cred(cred);
		return;
	}
	key_revoke(cred->thread_keyring);
	put_cred(cred);
}
module_init(keyring_test_init);
module_exit(keyring_test_exit);
