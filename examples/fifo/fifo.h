/* SPDX-License-Identifier: GPL-2.0 */
/* The fifo sample driver's interface to other modules. */
#ifndef FIFO_H
#define FIFO_H

int fifo_push(int value);	/* 0, or -ENOSPC when full */
int fifo_pop(int *value);	/* 0, or -EAGAIN when empty */

#endif
