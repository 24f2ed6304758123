/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Multi-queue block drivers (Linux 6.6's block/blk-mq.c API): a tag set
 * allocated with blk_mq_alloc_tag_set() and freed with
 * blk_mq_free_tag_set(), and the disks made over it by blk_mq_alloc_disk().
 * kloader calls no queue_rq (it emulates no block I/O).
 */
#ifndef _LINUX_BLK_MQ_H
#define _LINUX_BLK_MQ_H

#include <linux/blkdev.h>
#include <linux/list.h>

struct request;
struct blk_mq_hw_ctx;
struct blk_mq_tags;

#define BLK_MQ_F_SHOULD_MERGE	(1 << 0)
#define BLK_MQ_MAX_DEPTH	10240

struct blk_mq_queue_data {
	struct request *rq;
	bool last;
};

struct blk_mq_ops {
	blk_status_t (*queue_rq)(struct blk_mq_hw_ctx *hctx, const struct blk_mq_queue_data *bd);
	void (*commit_rqs)(struct blk_mq_hw_ctx *hctx);
	void (*queue_rqs)(struct request **rqlist);
	int (*get_budget)(struct request_queue *q);
	void (*put_budget)(struct request_queue *q, int budget_token);
};

struct blk_mq_tag_set {
	const struct blk_mq_ops *ops;
	unsigned int nr_maps;
	unsigned int nr_hw_queues;
	unsigned int queue_depth;
	unsigned int reserved_tags;
	unsigned int cmd_size;
	int numa_node;
	unsigned int timeout;
	unsigned int flags;
	void *driver_data;
	struct blk_mq_tags **tags;
	struct list_head tag_list;
};

int blk_mq_alloc_tag_set(struct blk_mq_tag_set *set);
void blk_mq_free_tag_set(struct blk_mq_tag_set *set);
struct gendisk *__blk_mq_alloc_disk(struct blk_mq_tag_set *set, void *queuedata,
				    struct lock_class_key *lkclass);
#define blk_mq_alloc_disk(set, queuedata)				\
({									\
	static struct lock_class_key __key;				\
	__blk_mq_alloc_disk(set, queuedata, &__key);			\
})

#endif /* _LINUX_BLK_MQ_H */
