/*
 * dev_printk, dynamic debug, spin/rw locks, random numbers, a custom
 * parameter, load_nls and FORTIFY's panic, from module code
 * (tests/test_kernel_api.py).  Structures carry Linux 6.1's offsets.
 */
#include <linux/module.h>
#include <linux/nls.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>

static char *scenario = "none";
module_param(scenario, charp, 0444);

static int tune_set(const char *val, const struct kernel_param *kp) { return 0; }
static int tune_get(char *buf, const struct kernel_param *kp) { return 0; }
static const struct kernel_param_ops tune_ops = { .set = tune_set, .get = tune_get };
static int tune;
module_param_cb(tune, &tune_ops, &tune, 0644);

struct named { const char *name; };
struct device {                       /* kobj.name@0 init_name@80 bus@96 driver@104 */
	const char *kobj_name;
	char pad[72];
	const char *init_name;
	void *type;
	struct named *bus;
	struct named *driver;
	char rest[640];
};
struct _ddebug {
	const char *modname, *function, *filename, *format;
	unsigned int lineno:18, class_id:6, flags:8;
	long key;
};

void _dev_err(const struct device *dev, const char *fmt, ...);
void _dev_info(const struct device *dev, const char *fmt, ...);
void __dynamic_pr_debug(struct _ddebug *descriptor, const char *fmt, ...);
void __dynamic_dev_dbg(struct _ddebug *descriptor, const struct device *dev, const char *fmt, ...);
int _raw_spin_trylock(raw_spinlock_t *lock);
void _raw_spin_lock_bh(raw_spinlock_t *lock);
void _raw_spin_unlock_bh(raw_spinlock_t *lock);
typedef struct { unsigned int cnts; unsigned int wait_lock; } rwlock_t;
void _raw_read_lock(rwlock_t *lock);
void _raw_read_unlock(rwlock_t *lock);
unsigned long _raw_write_lock_irqsave(rwlock_t *lock);
void _raw_write_unlock_irqrestore(rwlock_t *lock, unsigned long flags);
void get_random_bytes(void *buf, size_t len);
u32 get_random_u32(void);
void fortify_panic(const char *name);
void __warn_printk(const char *fmt, ...);
int __register_blkdev(unsigned int major, const char *name, void (*probe)(unsigned int devt));
void unregister_blkdev(unsigned int major, const char *name);
void rtnl_lock(void);
void rtnl_unlock(void);
int rtnl_is_locked(void);
int rtnl_trylock(void);
unsigned long __msecs_to_jiffies(const unsigned int m);
unsigned int jiffies_to_msecs(const unsigned long j);
unsigned long __usecs_to_jiffies(const unsigned int u);
struct nls_table *load_nls(char *charset);
void unload_nls(struct nls_table *nls);
struct nls_table *load_nls_default(void);

static struct named pci = { "pci" }, drv = { "e1000" };
static struct device dev = { .kobj_name = "0000:00:03.0", .bus = &pci };
static struct _ddebug site = { "kapi2", "kapi2_init", "kapi2.c", "x", 42, 0, 1 | 2 | 4 | 8 };

static int __init kapi2_init(void)
{
	raw_spinlock_t lock = { 0 };
	rwlock_t rw = { 0, 0 };
	unsigned long flags;
	unsigned char bytes[16] = { 0 };
	int i, zero = 0, t1, t2;
	struct nls_table *nls;

	_dev_err(&dev, "kapi2 bus only %d\n", 1);
	dev.driver = &drv;
	dev.init_name = "eth-test";
	_dev_info(&dev, "kapi2 driver and init_name\n");
	_dev_err(NULL, "kapi2 no device\n");
	__dynamic_pr_debug(&site, "kapi2 debug %s\n", "on");
	site.flags = 1;
	__dynamic_dev_dbg(&site, &dev, "kapi2 dev debug\n");

	_raw_spin_lock_bh(&lock);
	t1 = _raw_spin_trylock(&lock);
	_raw_spin_unlock_bh(&lock);
	t2 = _raw_spin_trylock(&lock);
	_raw_read_lock(&rw);
	_raw_read_lock(&rw);
	pr_info("kapi2: trylock held=%d free=%d readers=%u\n", t1, t2, rw.cnts >> 9);
	_raw_read_unlock(&rw);
	_raw_read_unlock(&rw);
	flags = _raw_write_lock_irqsave(&rw);
	pr_info("kapi2: writer=%#x flags=%#lx\n", rw.cnts, flags);
	_raw_write_unlock_irqrestore(&rw, flags);

	get_random_bytes(bytes, sizeof(bytes));
	for (i = 0; i < 16; i++)
		zero += !bytes[i];
	pr_info("kapi2: random zero_bytes_lt_16=%d distinct=%d\n", zero < 16,
		get_random_u32() != get_random_u32() || get_random_u32() != get_random_u32());

	nls = load_nls("kltest");
	pr_info("kapi2: load_nls=%s default=%s\n", nls ? nls->charset : "(none)",
		load_nls_default()->charset);
	if (nls)
		unload_nls(nls);

	{
		int major = __register_blkdev(0, "kltestblk", NULL);
		int busy = __register_blkdev(major, "other", NULL);
		int big = __register_blkdev(600, "other", NULL);

		pr_info("kapi2: blkdev major=%d busy=%d big=%d\n", major, busy, big);
		if (strcmp(scenario, "keep_major"))
			unregister_blkdev(major, "kltestblk");
	}
	{
		int before = rtnl_is_locked(), held, again;

		rtnl_lock();
		held = rtnl_is_locked();
		again = rtnl_trylock();
		rtnl_unlock();
		pr_info("kapi2: rtnl before=%d held=%d trylock=%d after=%d\n", before, held, again,
			rtnl_is_locked());
	}
	pr_info("kapi2: jiffies 1ms=%lu 8ms=%lu neg=%d 10j=%ums 1us=%lu\n", __msecs_to_jiffies(1),
		__msecs_to_jiffies(8), __msecs_to_jiffies(-1) == (~0UL >> 2) - 1,
		jiffies_to_msecs(10), __usecs_to_jiffies(1));
	__warn_printk("kapi2 warned %d\n", 7);
	if (!strcmp(scenario, "fortify")) {
		fortify_panic("memcpy");
		pr_info("kapi2: not reached\n");
	}
	return 0;
}

static void __exit kapi2_exit(void) { }

module_init(kapi2_init);
module_exit(kapi2_exit);
MODULE_LICENSE("GPL");
