"""Single kernel functions real modules call first (lib/, mm/, crypto/):
kstrdup_const, sysfs_streq, the bitmap and cpumask allocators, bucket
spinlocks and __crypto_memneq, called from guest code as a module calls
them, under kloader's own kernel."""

from __future__ import annotations

import pytest

from guestcode import build
from kloaderd.embed import Problems
from kloaderd.kernel.kernel import Kernel

SOURCE = r"""
typedef unsigned long size_t;
typedef unsigned int gfp_t;
typedef struct { unsigned int lock; } spinlock_t;
struct lock_class_key;
const char *kstrdup_const(const char *s, gfp_t gfp);
void kfree_const(const void *x);
int sysfs_streq(const char *s1, const char *s2);
unsigned long *bitmap_zalloc(unsigned int nbits, gfp_t flags);
void bitmap_free(const unsigned long *bitmap);
size_t ksize(const void *objp);
int alloc_cpumask_var_node(unsigned long **mask, gfp_t flags, int node);
void free_cpumask_var(unsigned long *mask);
int __alloc_bucket_spinlocks(spinlock_t **locks, unsigned int *locks_mask, size_t max_size,
                             unsigned int cpu_mult, gfp_t gfp, const char *name,
                             struct lock_class_key *key);
void free_bucket_spinlocks(spinlock_t *locks);
unsigned long __crypto_memneq(const void *a, const void *b, size_t size);
extern const char uuid_null[];

static const char hello[] = "hello";
const char *kept;
long dup_const(long kernel_string)
{
    const char *s = kernel_string ? uuid_null : hello;
    kept = kstrdup_const(s, 0xcc0);
    return kept == s ? 0 : (kept[0] == 'h' && kept[5] == 0 ? 1 : -1);
}
long free_const(void) { kfree_const(kept); return 0; }

long streq(long which)
{
    static const char *pairs[][2] = {{"on", "on"}, {"on\n", "on"}, {"on", "on\n"}, {"on\n", "on\n"},
                                     {"on\n\n", "on"}, {"on", "off"}, {"o", "on"}, {"", "\n"}};
    return sysfs_streq(pairs[which][0], pairs[which][1]);
}

long bitmap(unsigned int nbits)
{
    unsigned long *b = bitmap_zalloc(nbits, 0xcc0), any = 0;
    long size = ksize(b);
    for (unsigned int i = 0; i < (nbits + 63) / 64; i++)
        any |= b[i];
    bitmap_free(b);
    return any ? -1 : size;
}

long cpumask(void)
{
    unsigned long *mask = 0;
    if (!alloc_cpumask_var_node(&mask, 0xcc0 | 0x100, -1) || !mask || mask[0])
        return -1;
    free_cpumask_var(mask);
    return 0;
}

spinlock_t *locks;
unsigned int mask;
long bucket_locks(long max_size, long cpu_mult)
{
    int err = __alloc_bucket_spinlocks(&locks, &mask, max_size, cpu_mult, 0xcc0, "l", 0);
    if (err)
        return err;
    for (unsigned int i = 0; i <= mask; i++)
        if (locks[i].lock)
            return -1;
    free_bucket_spinlocks(locks);
    return mask;
}

long memneq(long differ_at)
{
    char a[40], b[40];
    for (int i = 0; i < 40; i++)
        a[i] = b[i] = i;
    if (differ_at >= 0)
        b[differ_at] ^= 0x80;
    return __crypto_memneq(a, b, 40) != 0;
}
"""


@pytest.fixture
def kernel() -> Kernel:
    return Kernel()


@pytest.fixture
def machine(kernel):
    return kernel.machine


@pytest.fixture
def g(machine):
    return build(machine, SOURCE)


def _clean(kernel, booted) -> None:
    """Nothing reported, and every allocation given back."""
    problems = Problems.of_kernel(kernel)
    assert not problems, problems
    assert kernel.slab.usage(None) == booted


@pytest.mark.trio
async def test_kstrdup_const_keeps_the_kernels_strings_and_copies_others(machine, g, kernel):
    booted = kernel.slab.usage(None)
    assert await machine.call(g["dup_const"], 1) == 0           # uuid_null: kernel rodata
    await machine.call(g["free_const"])                          # and kfree_const leaves it
    assert await machine.call(g["dup_const"], 0) == 1            # a module's string: a copy
    await machine.call(g["free_const"])                          # which kfree_const frees
    _clean(kernel, booted)


@pytest.mark.trio
async def test_sysfs_streq_forgives_one_trailing_newline_either_side(machine, g):
    assert [await machine.call(g["streq"], i) for i in range(8)] == [1, 1, 1, 1, 0, 0, 0, 1]


@pytest.mark.trio
async def test_bitmap_zalloc_and_cpumask_come_zeroed_in_whole_longs(machine, g, kernel):
    booted = kernel.slab.usage(None)
    assert await machine.call(g["bitmap"], 1) == 8
    assert await machine.call(g["bitmap"], 65) == 16
    assert await machine.call(g["cpumask"]) == 0
    _clean(kernel, booted)


@pytest.mark.trio
async def test_bucket_spinlocks_are_per_cpu_multiples_capped_by_max_size(machine, g, kernel):
    booted = kernel.slab.usage(None)
    assert await machine.call(g["bucket_locks"], 1024, 0) == 1023      # max_size locks
    assert await machine.call(g["bucket_locks"], 1024, 16) == 15       # 16 per CPU, one CPU
    assert await machine.call(g["bucket_locks"], 8, 16) == 7           # capped by max_size
    _clean(kernel, booted)


@pytest.mark.trio
async def test_crypto_memneq_says_whether_secrets_differ(machine, g):
    assert await machine.call(g["memneq"], -1) == 0
    assert [await machine.call(g["memneq"], i) for i in (0, 17, 39)] == [1, 1, 1]
