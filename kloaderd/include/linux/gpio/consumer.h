/* SPDX-License-Identifier: GPL-2.0 */
/*
 * GPIO descriptors (Linux 6.1's consumer interface).  kloader's machine has
 * no GPIO chip: gpiod_get is ERR_PTR(-ENOENT), gpiod_get_optional NULL, and
 * every operation on a NULL descriptor does nothing and returns 0.
 */
#ifndef __LINUX_GPIO_CONSUMER_H
#define __LINUX_GPIO_CONSUMER_H

#include <linux/compiler.h>
#include <linux/err.h>
#include <linux/types.h>

struct device;
struct gpio_desc;

#define GPIOD_FLAGS_BIT_DIR_SET		(1 << 0)
#define GPIOD_FLAGS_BIT_DIR_OUT		(1 << 1)
#define GPIOD_FLAGS_BIT_DIR_VAL		(1 << 2)
#define GPIOD_FLAGS_BIT_OPEN_DRAIN	(1 << 3)
#define GPIOD_FLAGS_BIT_NONEXCLUSIVE	(1 << 4)

enum gpiod_flags {
	GPIOD_ASIS	= 0,
	GPIOD_IN	= GPIOD_FLAGS_BIT_DIR_SET,
	GPIOD_OUT_LOW	= GPIOD_FLAGS_BIT_DIR_SET | GPIOD_FLAGS_BIT_DIR_OUT,
	GPIOD_OUT_HIGH	= GPIOD_FLAGS_BIT_DIR_SET | GPIOD_FLAGS_BIT_DIR_OUT | GPIOD_FLAGS_BIT_DIR_VAL,
	GPIOD_OUT_LOW_OPEN_DRAIN = GPIOD_OUT_LOW | GPIOD_FLAGS_BIT_OPEN_DRAIN,
	GPIOD_OUT_HIGH_OPEN_DRAIN = GPIOD_OUT_HIGH | GPIOD_FLAGS_BIT_OPEN_DRAIN,
};

int gpiod_count(struct device *dev, const char *con_id);
struct gpio_desc *__must_check gpiod_get(struct device *dev, const char *con_id, enum gpiod_flags flags);
struct gpio_desc *__must_check gpiod_get_index(struct device *dev, const char *con_id, unsigned int idx,
					       enum gpiod_flags flags);
struct gpio_desc *__must_check gpiod_get_optional(struct device *dev, const char *con_id,
						  enum gpiod_flags flags);
struct gpio_desc *__must_check gpiod_get_index_optional(struct device *dev, const char *con_id,
							unsigned int index, enum gpiod_flags flags);
void gpiod_put(struct gpio_desc *desc);

struct gpio_desc *__must_check devm_gpiod_get(struct device *dev, const char *con_id, enum gpiod_flags flags);
struct gpio_desc *__must_check devm_gpiod_get_index(struct device *dev, const char *con_id, unsigned int idx,
						    enum gpiod_flags flags);
struct gpio_desc *__must_check devm_gpiod_get_optional(struct device *dev, const char *con_id,
						       enum gpiod_flags flags);
struct gpio_desc *__must_check devm_gpiod_get_index_optional(struct device *dev, const char *con_id,
							     unsigned int index, enum gpiod_flags flags);
void devm_gpiod_put(struct device *dev, struct gpio_desc *desc);

int gpiod_direction_input(struct gpio_desc *desc);
int gpiod_direction_output(struct gpio_desc *desc, int value);
int gpiod_direction_output_raw(struct gpio_desc *desc, int value);
int gpiod_get_value(const struct gpio_desc *desc);
int gpiod_get_raw_value(const struct gpio_desc *desc);
void gpiod_set_value(struct gpio_desc *desc, int value);
void gpiod_set_raw_value(struct gpio_desc *desc, int value);
int gpiod_get_value_cansleep(const struct gpio_desc *desc);
int gpiod_get_raw_value_cansleep(const struct gpio_desc *desc);
void gpiod_set_value_cansleep(struct gpio_desc *desc, int value);
void gpiod_set_raw_value_cansleep(struct gpio_desc *desc, int value);
int gpiod_set_consumer_name(struct gpio_desc *desc, const char *name);
int gpiod_to_irq(const struct gpio_desc *desc);

struct gpio_desc *gpio_to_desc(unsigned gpio);

#endif /* __LINUX_GPIO_CONSUMER_H */
