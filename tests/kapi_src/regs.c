/*
 * Registrations and lib/ helpers from module code (tests/test_kernel_api.py).
 * `scenario` picks a mistake to make; "none" registers and unregisters
 * everything cleanly.
 */
#include <linux/module.h>
#include <linux/crypto.h>
#include <linux/nls.h>
#include <linux/notifier.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/string.h>

static char *scenario = "none";
module_param(scenario, charp, 0444);

bool __list_add_valid(struct list_head *new, struct list_head *prev, struct list_head *next);
bool __list_del_entry_valid(struct list_head *entry);
unsigned long _find_next_bit(const unsigned long *addr, unsigned long nbits, unsigned long start);
unsigned long _find_first_zero_bit(const unsigned long *addr, unsigned long size);
unsigned int __bitmap_weight(const unsigned long *bitmap, unsigned int bits);
void refcount_warn_saturate(unsigned int *r, int t);
char *strsep(char **s, const char *ct);
char *strncpy(char *dest, const char *src, size_t count);
unsigned long __get_free_pages(gfp_t gfp_mask, unsigned int order);
void free_pages(unsigned long addr, unsigned int order);
struct rw_semaphore { long count; long owner; int osq; int wait_lock; struct list_head wait_list; };
void __init_rwsem(struct rw_semaphore *sem, const char *name, void *key);
void down_read(struct rw_semaphore *sem);
void up_read(struct rw_semaphore *sem);
void down_write(struct rw_semaphore *sem);
void up_write(struct rw_semaphore *sem);
int down_write_trylock(struct rw_semaphore *sem);
int down_read_trylock(struct rw_semaphore *sem);

static struct crypto_alg alg = {
	.cra_name = "kltest", .cra_driver_name = "kltest-generic", .cra_priority = 100,
	.cra_blocksize = 16, .cra_flags = CRYPTO_ALG_TYPE_CIPHER, .cra_module = THIS_MODULE,
};
static struct crypto_alg clash = {
	.cra_name = "kltest-generic", .cra_driver_name = "kltest-other", .cra_priority = 100,
	.cra_module = THIS_MODULE,
};
static struct crypto_alg nameless = { .cra_name = "nodriver", .cra_module = THIS_MODULE };

static unsigned char no_case[256];
static struct nls_table table = {
	.charset = "kltest", .charset2lower = no_case, .charset2upper = no_case,
};

static int event(struct notifier_block *nb, unsigned long action, void *data)
{
	return NOTIFY_DONE;
}
static BLOCKING_NOTIFIER_HEAD(chain);
static struct notifier_block low = { .notifier_call = event, .priority = 1 };
static struct notifier_block high = { .notifier_call = event, .priority = 9 };
static struct notifier_block reboot = { .notifier_call = event };

struct item { int value; struct rcu_head rcu; };
static struct kmem_cache *cache;

static bool is(const char *what)
{
	return !strcmp(scenario, what);
}

static int __init regs_init(void)
{
	struct list_head a, b;
	unsigned long bits[2] = { 0x8001UL, 0x1UL };
	unsigned int ref = 0;
	struct item *item;
	int err;

	err = crypto_register_alg(&alg);
	pr_info("regs: crypto_register_alg=%d refcnt=%u\n", err, alg.cra_refcnt);
	err = crypto_register_alg(&alg);
	pr_info("regs: again=%d clash=%d nameless=%d\n", err,
		crypto_register_alg(&clash), crypto_register_alg(&nameless));
	err = register_nls(&table);
	pr_info("regs: register_nls=%d busy=%d owner_ok=%d\n", err,
		register_nls(&table), table.owner == THIS_MODULE);
	blocking_notifier_chain_register(&chain, &low);
	blocking_notifier_chain_register(&chain, &high);
	pr_info("regs: chain order high=%d low=%d end=%d\n", chain.head == &high,
		high.next == &low, low.next == NULL);
	if (is("notifier_twice"))
		pr_info("regs: twice=%d\n", blocking_notifier_chain_register(&chain, &low));
	pr_info("regs: reboot=%d\n", register_reboot_notifier(&reboot));

	cache = kmem_cache_create("kltest_items", sizeof(struct item), 0, SLAB_HWCACHE_ALIGN, NULL);
	item = kmem_cache_zalloc(cache, GFP_KERNEL);
	pr_info("regs: cache=%d item=%d aligned=%d size=%u\n", cache != NULL, item && !item->value,
		((unsigned long)item & 31) == 0, kmem_cache_size(cache));
	if (!is("cache_leak"))
		kmem_cache_free(cache, item);

	item = kmalloc(sizeof(*item), GFP_KERNEL);
	rcu_read_lock();
	rcu_read_unlock();
	kfree_rcu(item, rcu);
	synchronize_rcu();

	INIT_LIST_HEAD(&a);
	pr_info("regs: add_valid=%d\n", __list_add_valid(&b, &a, &a));
	pr_info("regs: bits next=%lu next=%lu end=%lu zero=%lu weight=%u\n",
		_find_next_bit(bits, 128, 1), _find_next_bit(bits, 128, 16),
		_find_next_bit(bits, 64, 16), _find_first_zero_bit(bits, 128),
		__bitmap_weight(bits, 128));
	{
		struct rw_semaphore sem;
		char text[] = "a,b", *cursor = text, pad[8];
		unsigned long page = __get_free_pages(GFP_KERNEL, 1);
		int r1, w1, r2;

		__init_rwsem(&sem, "sem", NULL);
		down_read(&sem);
		down_read(&sem);
		w1 = down_write_trylock(&sem);
		up_read(&sem);
		up_read(&sem);
		down_write(&sem);
		r1 = down_read_trylock(&sem);
		up_write(&sem);
		r2 = down_read_trylock(&sem);
		up_read(&sem);
		pr_info("regs: rwsem write_while_read=%d read_while_write=%d read=%d count=%ld\n",
			w1, r1, r2, sem.count);
		pr_info("regs: strsep [%s]", strsep(&cursor, ","));
		pr_info(KERN_CONT " [%s]", strsep(&cursor, ","));
		pr_info(KERN_CONT " end=%d\n", cursor == NULL);
		strncpy(pad, "xy", sizeof(pad));
		pr_info("regs: strncpy padded=%d page_aligned=%d\n", pad[7] == 0 && pad[1] == 'y',
			page && (page & 8191) == 0);
		free_pages(page, 1);
	}
	if (is("refcount")) {
		refcount_warn_saturate(&ref, 3);
		refcount_warn_saturate(&ref, 3);
		pr_info("regs: ref=%#x\n", ref);
	}
	if (is("list_corrupt")) {
		a.next = &b;
		__list_del_entry_valid(&a);
		pr_info("regs: not reached\n");
	}
	return 0;
}

static void __exit regs_exit(void)
{
	int err;

	if (is("forget"))
		return;
	kmem_cache_destroy(cache);
	unregister_reboot_notifier(&reboot);
	err = blocking_notifier_chain_unregister(&chain, &high);
	pr_info("regs: unregister high=%d again=%d\n", err,
		blocking_notifier_chain_unregister(&chain, &high));
	blocking_notifier_chain_unregister(&chain, &low);
	err = unregister_nls(&table);
	pr_info("regs: unregister_nls=%d again=%d\n", err, unregister_nls(&table));
	crypto_unregister_alg(&alg);
	pr_info("regs: dead=%d\n", !!(alg.cra_flags & CRYPTO_ALG_DEAD));
	if (is("unregister_twice"))
		crypto_unregister_alg(&alg);
}

module_init(regs_init);
module_exit(regs_exit);
MODULE_LICENSE("GPL");
