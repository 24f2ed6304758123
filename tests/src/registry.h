/* SPDX-License-Identifier: GPL-2.0 */
/* registry: a subsystem other modules register callbacks with. */
#ifndef _REGISTRY_H
#define _REGISTRY_H

struct module;

struct reg_ops {
	struct module *owner;
	const char *name;
	int (*callback)(int value);
	struct reg_ops *next;
};

int reg_register(struct reg_ops *ops);
void reg_unregister(struct reg_ops *ops);
int reg_fire(int value);

#endif
