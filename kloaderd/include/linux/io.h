/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Device memory and I/O ports (asm/io.h, lib/iomap.c, lib/devres.c).
 * kloader's machine has no devices: ioremap of a range that is not RAM
 * succeeds and every read of it is all ones, every write goes nowhere;
 * every port reads all ones.  See docs/kernel-files.md, "Hardware".
 */
#ifndef _LINUX_IO_H
#define _LINUX_IO_H

#include <linux/compiler.h>
#include <linux/ioport.h>
#include <linux/types.h>

struct device;

void __iomem *ioremap(resource_size_t offset, unsigned long size);
void __iomem *ioremap_uc(resource_size_t offset, unsigned long size);
void __iomem *ioremap_wc(resource_size_t offset, unsigned long size);
void __iomem *ioremap_wt(resource_size_t offset, unsigned long size);
void __iomem *ioremap_cache(resource_size_t offset, unsigned long size);
void __iomem *ioremap_prot(resource_size_t offset, unsigned long size, unsigned long prot_val);
void __iomem *ioremap_encrypted(resource_size_t phys_addr, unsigned long size);
void iounmap(volatile void __iomem *addr);

void __iomem *devm_ioremap(struct device *dev, resource_size_t offset, resource_size_t size);
void __iomem *devm_ioremap_uc(struct device *dev, resource_size_t offset, resource_size_t size);
void __iomem *devm_ioremap_wc(struct device *dev, resource_size_t offset, resource_size_t size);
void devm_iounmap(struct device *dev, void __iomem *addr);
void __iomem *devm_ioremap_resource(struct device *dev, const struct resource *res);

/* arch/x86/lib/iomem.c */
void memcpy_fromio(void *to, const volatile void __iomem *from, size_t n);
void memcpy_toio(volatile void __iomem *to, const void *from, size_t n);
void memset_io(volatile void __iomem *a, int b, size_t c);

/* MMIO: plain moves, as x86's build_mmio_read/build_mmio_write. */
#define __KLOADER_MMIO(bwlq, type)						\
static inline type read##bwlq(const volatile void __iomem *addr)		\
{ return *(const volatile type __force *)addr; }				\
static inline void write##bwlq(type val, volatile void __iomem *addr)		\
{ *(volatile type __force *)addr = val; }					\
static inline type __raw_read##bwlq(const volatile void __iomem *addr)		\
{ return *(const volatile type __force *)addr; }				\
static inline void __raw_write##bwlq(type val, volatile void __iomem *addr)	\
{ *(volatile type __force *)addr = val; }
__KLOADER_MMIO(b, u8)
__KLOADER_MMIO(w, u16)
__KLOADER_MMIO(l, u32)
__KLOADER_MMIO(q, u64)
#undef __KLOADER_MMIO

#define readb_relaxed(a)	readb(a)
#define readw_relaxed(a)	readw(a)
#define readl_relaxed(a)	readl(a)
#define readq_relaxed(a)	readq(a)
#define writeb_relaxed(v, a)	writeb(v, a)
#define writew_relaxed(v, a)	writew(v, a)
#define writel_relaxed(v, a)	writel(v, a)
#define writeq_relaxed(v, a)	writeq(v, a)

/* Port I/O: the CPU's in and out instructions. */
#define __KLOADER_PIO(bwl, bw, type)						\
static inline void out##bwl(type value, u16 port)				\
{ asm volatile("out" #bwl " %" #bw "0, %w1" : : "a"(value), "Nd"(port)); }	\
static inline type in##bwl(u16 port)						\
{ type value; asm volatile("in" #bwl " %w1, %" #bw "0" : "=a"(value) : "Nd"(port)); return value; } \
static inline void out##bwl##_p(type value, u16 port)				\
{ out##bwl(value, port); }							\
static inline type in##bwl##_p(u16 port)					\
{ return in##bwl(port); }
__KLOADER_PIO(b, b, u8)
__KLOADER_PIO(w, w, u16)
__KLOADER_PIO(l, , u32)
#undef __KLOADER_PIO

/* lib/iomap.c: a cookie from ioport_map or ioremap. */
unsigned int ioread8(const void __iomem *addr);
unsigned int ioread16(const void __iomem *addr);
unsigned int ioread16be(const void __iomem *addr);
unsigned int ioread32(const void __iomem *addr);
unsigned int ioread32be(const void __iomem *addr);
void iowrite8(u8 val, void __iomem *addr);
void iowrite16(u16 val, void __iomem *addr);
void iowrite16be(u16 val, void __iomem *addr);
void iowrite32(u32 val, void __iomem *addr);
void iowrite32be(u32 val, void __iomem *addr);
void ioread8_rep(const void __iomem *addr, void *dst, unsigned long count);
void ioread16_rep(const void __iomem *addr, void *dst, unsigned long count);
void ioread32_rep(const void __iomem *addr, void *dst, unsigned long count);
void iowrite8_rep(void __iomem *addr, const void *src, unsigned long count);
void iowrite16_rep(void __iomem *addr, const void *src, unsigned long count);
void iowrite32_rep(void __iomem *addr, const void *src, unsigned long count);
void __iomem *ioport_map(unsigned long port, unsigned int nr);
void ioport_unmap(void __iomem *addr);

#endif /* _LINUX_IO_H */
