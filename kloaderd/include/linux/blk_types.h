/* SPDX-License-Identifier: GPL-2.0 */
/* struct block_device: a disk or partition (the members kloader keeps). */
#ifndef _LINUX_BLK_TYPES_H
#define _LINUX_BLK_TYPES_H

#include <linux/types.h>
#include <linux/kdev_t.h>

typedef u64 sector_t;
typedef u8 blk_status_t;

#define BLK_STS_OK		0
#define BLK_STS_NOTSUPP		((blk_status_t)1)
#define BLK_STS_IOERR		((blk_status_t)10)

struct gendisk;
struct request_queue;

struct block_device {
	sector_t bd_start_sect;
	sector_t bd_nr_sectors;
	struct gendisk *bd_disk;
	struct request_queue *bd_queue;
	dev_t bd_dev;
};

#endif /* _LINUX_BLK_TYPES_H */
