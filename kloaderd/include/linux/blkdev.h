/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Disks (Linux 6.6's block/genhd.c API): a gendisk made by
 * blk_alloc_disk() or blk_mq_alloc_disk(), its numbers and name filled in
 * by the driver, its size set with set_capacity(), made visible by
 * add_disk() (/sys/block/NAME, /proc/partitions, /dev/NAME) and gone with
 * del_gendisk(); put_disk() frees it.  kloader emulates no block I/O.
 */
#ifndef _LINUX_BLKDEV_H
#define _LINUX_BLKDEV_H

#include <linux/blk_types.h>
#include <linux/kdev_t.h>
#include <linux/mutex.h>

struct module;
struct device;
struct attribute_group;

#define DISK_NAME_LEN		32
#define DISK_MAX_PARTS		256

#define GENHD_FL_REMOVABLE	(1 << 0)
#define GENHD_FL_HIDDEN		(1 << 1)
#define GENHD_FL_NO_PART	(1 << 2)

#define GD_NEED_PART_SCAN	0
#define GD_READ_ONLY		1
#define GD_DEAD			2
#define GD_NATIVE_CAPACITY	3
#define GD_ADDED		4
#define GD_SUPPRESS_PART_SCAN	5
#define GD_OWNS_QUEUE		6

#define QUEUE_FLAG_NONROT	6

struct block_device_operations {
	int (*open)(struct block_device *bdev, unsigned int mode);
	void (*release)(struct gendisk *disk, unsigned int mode);
	void (*free_disk)(struct gendisk *disk);
	struct module *owner;
};

struct gendisk {
	int major;
	int first_minor;
	int minors;
	char disk_name[DISK_NAME_LEN];
	struct block_device *part0;
	const struct block_device_operations *fops;
	struct request_queue *queue;
	void *private_data;
	int flags;
	unsigned long state;
};

struct queue_limits {
	unsigned long seg_boundary_mask;
	unsigned long virt_boundary_mask;
	unsigned int max_hw_sectors;
	unsigned int max_dev_sectors;
	unsigned int chunk_sectors;
	unsigned int max_sectors;
	unsigned int max_segment_size;
	unsigned int physical_block_size;
	unsigned int logical_block_size;
	unsigned int io_min;
	unsigned int io_opt;
	unsigned int max_discard_sectors;
	unsigned int max_hw_discard_sectors;
	unsigned int max_write_zeroes_sectors;
	unsigned short max_segments;
};

struct request_queue {
	void *queuedata;
	unsigned long queue_flags;
	unsigned int rq_timeout;
	struct gendisk *disk;
	struct queue_limits limits;
	struct blk_mq_tag_set *tag_set;
};

static inline sector_t get_capacity(struct gendisk *disk)
{
	return disk->part0->bd_nr_sectors;
}

int __register_blkdev(unsigned int major, const char *name, void (*probe)(dev_t devt));
#define register_blkdev(major, name) __register_blkdev(major, name, NULL)
void unregister_blkdev(unsigned int major, const char *name);

struct gendisk *__blk_alloc_disk(int node, struct lock_class_key *lkclass);
#define blk_alloc_disk(node_id)						\
({									\
	static struct lock_class_key __key;				\
	__blk_alloc_disk(node_id, &__key);				\
})
int device_add_disk(struct device *parent, struct gendisk *disk, const struct attribute_group **groups);
static inline int add_disk(struct gendisk *disk)
{
	return device_add_disk(NULL, disk, NULL);
}
void del_gendisk(struct gendisk *disk);
void put_disk(struct gendisk *disk);
void set_capacity(struct gendisk *disk, sector_t size);
bool set_capacity_and_notify(struct gendisk *disk, sector_t size);
void set_disk_ro(struct gendisk *disk, bool read_only);

void blk_queue_flag_set(unsigned int flag, struct request_queue *q);
void blk_queue_flag_clear(unsigned int flag, struct request_queue *q);
void blk_queue_logical_block_size(struct request_queue *q, unsigned int size);
void blk_queue_physical_block_size(struct request_queue *q, unsigned int size);
void blk_queue_io_min(struct request_queue *q, unsigned int min);
void blk_queue_io_opt(struct request_queue *q, unsigned int opt);
void blk_queue_max_hw_sectors(struct request_queue *q, unsigned int max_hw_sectors);
void blk_queue_max_segments(struct request_queue *q, unsigned short max_segments);
void blk_queue_max_segment_size(struct request_queue *q, unsigned int max_size);
void blk_queue_max_discard_sectors(struct request_queue *q, unsigned int max_discard_sectors);
void blk_queue_max_write_zeroes_sectors(struct request_queue *q, unsigned int max_write_same_sectors);
void blk_queue_chunk_sectors(struct request_queue *q, unsigned int chunk_sectors);
void blk_queue_rq_timeout(struct request_queue *q, unsigned int timeout);
void blk_queue_virt_boundary(struct request_queue *q, unsigned long mask);

#endif /* _LINUX_BLKDEV_H */
