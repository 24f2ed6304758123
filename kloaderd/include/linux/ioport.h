/* SPDX-License-Identifier: GPL-2.0 */
/* struct resource: a range of I/O ports, memory or an IRQ (Linux 6.1 layout). */
#ifndef _LINUX_IOPORT_H
#define _LINUX_IOPORT_H

#include <linux/types.h>

typedef phys_addr_t resource_size_t;

struct resource {
	resource_size_t start;
	resource_size_t end;
	const char *name;
	unsigned long flags;
	unsigned long desc;
	struct resource *parent, *sibling, *child;
};

_Static_assert(sizeof(struct resource) == 64, "struct resource is 64 bytes");

#define IORESOURCE_TYPE_BITS	0x00001f00
#define IORESOURCE_IO		0x00000100
#define IORESOURCE_MEM		0x00000200
#define IORESOURCE_REG		0x00000300
#define IORESOURCE_IRQ		0x00000400
#define IORESOURCE_DMA		0x00000800
#define IORESOURCE_BUS		0x00001000
#define IORESOURCE_PREFETCH	0x00002000
#define IORESOURCE_READONLY	0x00004000
#define IORESOURCE_SIZEALIGN	0x00040000
#define IORESOURCE_MUXED	0x00400000
#define IORESOURCE_EXCLUSIVE	0x08000000
#define IORESOURCE_DISABLED	0x10000000
#define IORESOURCE_UNSET	0x20000000
#define IORESOURCE_AUTO		0x40000000
#define IORESOURCE_BUSY		0x80000000

#define DEFINE_RES_NAMED(_start, _size, _name, _flags)			\
	{								\
		.start = (_start),					\
		.end = (_start) + (_size) - 1,				\
		.name = (_name),					\
		.flags = (_flags),					\
		.desc = 0,						\
	}
#define DEFINE_RES_IRQ(_irq)		DEFINE_RES_NAMED((_irq), 1, NULL, IORESOURCE_IRQ)
#define DEFINE_RES_IRQ_NAMED(_irq, _name) DEFINE_RES_NAMED((_irq), 1, (_name), IORESOURCE_IRQ)
#define DEFINE_RES_MEM(_start, _size)	DEFINE_RES_NAMED((_start), (_size), NULL, IORESOURCE_MEM)
#define DEFINE_RES_MEM_NAMED(_start, _size, _name) DEFINE_RES_NAMED((_start), (_size), (_name), IORESOURCE_MEM)
#define DEFINE_RES_IO(_start, _size)	DEFINE_RES_NAMED((_start), (_size), NULL, IORESOURCE_IO)
#define DEFINE_RES_IO_NAMED(_start, _size, _name) DEFINE_RES_NAMED((_start), (_size), (_name), IORESOURCE_IO)

/* The roots: every I/O port range and every physical memory range (kernel/resource.c). */
extern struct resource ioport_resource;
extern struct resource iomem_resource;

struct device;

extern int request_resource(struct resource *root, struct resource *new);
extern int release_resource(struct resource *new);
extern int devm_request_resource(struct device *dev, struct resource *root, struct resource *new);
extern void devm_release_resource(struct device *dev, struct resource *new);

/* A busy region: NULL when another driver holds any part of it. */
extern struct resource *__request_region(struct resource *parent, resource_size_t start,
					 resource_size_t n, const char *name, int flags);
extern void __release_region(struct resource *parent, resource_size_t start, resource_size_t n);

#define request_region(start, n, name)		__request_region(&ioport_resource, (start), (n), (name), 0)
#define request_muxed_region(start, n, name)	__request_region(&ioport_resource, (start), (n), (name), IORESOURCE_MUXED)
#define __request_mem_region(start, n, name, excl) __request_region(&iomem_resource, (start), (n), (name), excl)
#define request_mem_region(start, n, name)	__request_region(&iomem_resource, (start), (n), (name), 0)
#define request_mem_region_exclusive(start, n, name) \
	__request_region(&iomem_resource, (start), (n), (name), IORESOURCE_EXCLUSIVE)
#define release_region(start, n)		__release_region(&ioport_resource, (start), (n))
#define release_mem_region(start, n)		__release_region(&iomem_resource, (start), (n))

extern struct resource *__devm_request_region(struct device *dev, struct resource *parent,
					      resource_size_t start, resource_size_t n, const char *name);
extern void __devm_release_region(struct device *dev, struct resource *parent,
				  resource_size_t start, resource_size_t n);

#define devm_request_region(dev, start, n, name) \
	__devm_request_region(dev, &ioport_resource, (start), (n), (name))
#define devm_request_mem_region(dev, start, n, name) \
	__devm_request_region(dev, &iomem_resource, (start), (n), (name))
#define devm_release_region(dev, start, n) \
	__devm_release_region(dev, &ioport_resource, (start), (n))
#define devm_release_mem_region(dev, start, n) \
	__devm_release_region(dev, &iomem_resource, (start), (n))

static inline unsigned long resource_type(const struct resource *res)
{
	return res->flags & IORESOURCE_TYPE_BITS;
}

static inline bool resource_contains(const struct resource *r1, const struct resource *r2)
{
	if (resource_type(r1) != resource_type(r2))
		return false;
	if (r1->flags & IORESOURCE_UNSET || r2->flags & IORESOURCE_UNSET)
		return false;
	return r1->start <= r2->start && r1->end >= r2->end;
}

static inline bool resource_overlaps(const struct resource *r1, const struct resource *r2)
{
	return r1->start <= r2->end && r1->end >= r2->start;
}

static inline resource_size_t resource_size(const struct resource *res)
{
	return res->end - res->start + 1;
}

#endif /* _LINUX_IOPORT_H */
