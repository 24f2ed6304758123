"""lib/rhashtable.c under the Debian 6.1 profile, from module code built
with the kernel's own kbuild: the header's inline insert, lookup and
remove work on the table rhashtable_init made; a table above 75 % is
doubled by the deferred worker (and one filled while the worker cannot run
goes through rhashtable_insert_slow and a future table), a table below 30 %
with automatic_shrinking is shrunk, duplicates are found, an rhltable keeps
a list per key, free_and_destroy hands every entry to free_fn; a table
never destroyed is the module's leak.  Skipped, saying why, without the
corpus or the kernel's compiler."""

from __future__ import annotations

import pytest
import trio

from realkernel import corpus, run_kbuilt

pytestmark = pytest.mark.slow          # builds with the real kernel's kbuild

PROBE = r"""
#include <linux/module.h>
#include <linux/rhashtable.h>
#include <linux/slab.h>
#include <linux/workqueue.h>
MODULE_LICENSE("GPL");

struct obj {
	u32 key;
	struct rhash_head node;
	struct rhlist_head list;
};

static const struct rhashtable_params params = {
	.key_len = sizeof(u32),
	.key_offset = offsetof(struct obj, key),
	.head_offset = offsetof(struct obj, node),
	.automatic_shrinking = true,
};
static const struct rhashtable_params lparams = {
	.key_len = sizeof(u32),
	.key_offset = offsetof(struct obj, key),
	.head_offset = offsetof(struct obj, list),
};
static struct rhashtable ht;
static struct rhltable hlt;
static struct obj *objs[200];
static struct obj lobjs[4];
static int freed;

static unsigned int tsize(void)
{
	return rcu_dereference_raw(ht.tbl)->size;
}

static void settle(void)
{
	while (flush_work(&ht.run_work))
		;
}

static int found(void)		/* each present key finds its object, each removed one none */
{
	int i, n = 0;

	for (i = 0; i < 200; i++) {
		u32 key = i;
		struct obj *o = rhashtable_lookup_fast(&ht, &key, params);

		n += objs[i] ? o == objs[i] : -!!o;
	}
	return n;
}

static void free_obj(void *ptr, void *arg)
{
	freed++;
	kfree(ptr);
}

static void count_obj(void *ptr, void *arg)
{
	(*(int *)arg)++;
}

static int __init rht_probe_init(void)
{
	struct rhlist_head *pos, *list;
	struct obj *o, dup = { .key = 5 };
	int i, err, n = 0;
	u32 key = 7;

	err = rhashtable_init(&ht, &params);
	if (err)
		return err;
	pr_info("rht_probe: size %u, %u elems\n", tsize(), atomic_read(&ht.nelems));
	preempt_disable();           /* the worker cannot run: the table fills past 100 % */
	for (i = 0; i < 100; i++) {
		objs[i] = kzalloc(sizeof(*objs[i]), GFP_ATOMIC);
		objs[i]->key = i;
		err = rhashtable_insert_fast(&ht, &objs[i]->node, params);
		if (err)
			break;
	}
	preempt_enable();
	for (; !err && i < 200; i++) {
		objs[i] = kzalloc(sizeof(*objs[i]), GFP_KERNEL);
		objs[i]->key = i;
		err = rhashtable_insert_fast(&ht, &objs[i]->node, params);
	}
	if (err)
		return err;
	settle();
	pr_info("rht_probe: size %u, %u elems, %d found\n", tsize(), atomic_read(&ht.nelems), found());
	pr_info("rht_probe: duplicate gives %s\n",
		rhashtable_lookup_get_insert_fast(&ht, &dup.node, params) == objs[5] ? "the old one" : "?");
	for (i = 0; i < 200; i += 2) {
		rhashtable_remove_fast(&ht, &objs[i]->node, params);
		kfree(objs[i]);
		objs[i] = NULL;
	}
	settle();
	pr_info("rht_probe: size %u, %u elems, %d found\n", tsize(), atomic_read(&ht.nelems), found());

	err = rhltable_init(&hlt, &lparams);
	if (err)
		return err;
	for (i = 0; i < 4; i++) {
		lobjs[i].key = i < 3 ? 7 : 8;
		rhltable_insert(&hlt, &lobjs[i].list, lparams);
	}
	rcu_read_lock();
	list = rhltable_lookup(&hlt, &key, lparams);
	rhl_for_each_entry_rcu(o, pos, list, list)
		n++;
	rcu_read_unlock();
	pr_info("rht_probe: %d under key 7\n", n);
	return 0;
}

static void __exit rht_probe_exit(void)
{
	int n = 0;

	rhltable_free_and_destroy(&hlt, count_obj, &n);
	rhashtable_free_and_destroy(&ht, free_obj, NULL);
	pr_info("rht_probe: freed %d, counted %d\n", freed, n);
}
module_init(rht_probe_init);
module_exit(rht_probe_exit);
"""


def test_module_code_inserts_finds_resizes_and_destroys(tmp_path):
    corpus("6.1")
    kernel, lines = run_kbuilt(tmp_path, "rht_probe", PROBE)
    assert lines == [
        "rht_probe: size 64, 0 elems",
        # 200 entries: doubled until no more than 75 % full
        "rht_probe: size 512, 200 elems, 200 found",
        "rht_probe: duplicate gives the old one",
        # 100 left, below 30 % of 512: shrunk to 3/2 of them, rounded up
        "rht_probe: size 256, 100 elems, 100 found",
        "rht_probe: 3 under key 7",
        "rht_probe: freed 100, counted 4",
    ]
    assert not [r.text for r in kernel.log.records()
                if "leaked" in r.text or "BUG" in r.text or "WARNING" in r.text]


LEAKY = r"""
#include <linux/module.h>
#include <linux/rhashtable.h>
MODULE_LICENSE("GPL");

struct obj { u32 key; struct rhash_head node; };
static const struct rhashtable_params params = {
	.key_len = sizeof(u32),
	.key_offset = offsetof(struct obj, key),
	.head_offset = offsetof(struct obj, node),
	.nelem_hint = 100,
};
static struct rhashtable ht;

static int __init rht_leaky_init(void)
{
	int err = rhashtable_init(&ht, &params);

	pr_info("rht_leaky: %d, size %u\n", err, rcu_dereference_raw(ht.tbl)->size);
	return err;
}

static void __exit rht_leaky_exit(void)
{
}
module_init(rht_leaky_init);
module_exit(rht_leaky_exit);
"""


def test_a_table_never_destroyed_is_the_modules_leak(tmp_path):
    corpus("6.1")
    kernel, lines = run_kbuilt(tmp_path, "rht_leaky", LEAKY)
    assert lines[0] == "rht_leaky: 0, size 256"          # nelem_hint 100 * 4 / 3, rounded up
    # struct bucket_table: 64 bytes and 256 buckets
    assert "rht_leaky: leaked 2112 bytes in 1 allocations" in lines
