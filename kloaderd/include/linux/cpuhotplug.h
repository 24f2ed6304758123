/* SPDX-License-Identifier: GPL-2.0 */
/*
 * CPU hotplug states (Linux's include/linux/cpuhotplug.h, cpu.h): the
 * dynamic ranges and the installers; the numbers are Linux 6.1's
 * (kloaderd/kernel/cpuhp.py).
 */
#ifndef __CPUHOTPLUG_H
#define __CPUHOTPLUG_H

#include <linux/types.h>

enum cpuhp_state {
	CPUHP_INVALID = -1,
	CPUHP_OFFLINE = 0,
	CPUHP_BP_PREPARE_DYN = 70,
	CPUHP_BP_PREPARE_DYN_END = 90,
	CPUHP_AP_ONLINE_DYN = 201,
	CPUHP_AP_ONLINE_DYN_END = 231,
	CPUHP_ONLINE = 236,
};

int __cpuhp_setup_state(enum cpuhp_state state, const char *name, bool invoke,
			int (*startup)(unsigned int cpu), int (*teardown)(unsigned int cpu),
			bool multi_instance);
void __cpuhp_remove_state(enum cpuhp_state state, bool invoke);
int __cpuhp_state_add_instance(enum cpuhp_state state, struct hlist_node *node, bool invoke);
int __cpuhp_state_remove_instance(enum cpuhp_state state, struct hlist_node *node, bool invoke);
void cpus_read_lock(void);
void cpus_read_unlock(void);

static inline int cpuhp_setup_state(enum cpuhp_state state, const char *name,
				    int (*startup)(unsigned int cpu), int (*teardown)(unsigned int cpu))
{
	return __cpuhp_setup_state(state, name, true, startup, teardown, false);
}

static inline int cpuhp_setup_state_nocalls(enum cpuhp_state state, const char *name,
					    int (*startup)(unsigned int cpu),
					    int (*teardown)(unsigned int cpu))
{
	return __cpuhp_setup_state(state, name, false, startup, teardown, false);
}

static inline int cpuhp_setup_state_multi(enum cpuhp_state state, const char *name,
					  int (*startup)(unsigned int cpu, struct hlist_node *node),
					  int (*teardown)(unsigned int cpu, struct hlist_node *node))
{
	return __cpuhp_setup_state(state, name, false, (void *)startup, (void *)teardown, true);
}

static inline void cpuhp_remove_state(enum cpuhp_state state) { __cpuhp_remove_state(state, true); }
static inline void cpuhp_remove_state_nocalls(enum cpuhp_state state) { __cpuhp_remove_state(state, false); }
static inline void cpuhp_remove_multi_state(enum cpuhp_state state) { __cpuhp_remove_state(state, false); }

static inline int cpuhp_state_add_instance(enum cpuhp_state state, struct hlist_node *node)
{
	return __cpuhp_state_add_instance(state, node, true);
}

static inline int cpuhp_state_add_instance_nocalls(enum cpuhp_state state, struct hlist_node *node)
{
	return __cpuhp_state_add_instance(state, node, false);
}

static inline int cpuhp_state_remove_instance(enum cpuhp_state state, struct hlist_node *node)
{
	return __cpuhp_state_remove_instance(state, node, true);
}

static inline int cpuhp_state_remove_instance_nocalls(enum cpuhp_state state, struct hlist_node *node)
{
	return __cpuhp_state_remove_instance(state, node, false);
}

#endif /* __CPUHOTPLUG_H */
