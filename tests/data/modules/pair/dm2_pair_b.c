// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>

int dm2_pair_a_answer(void);

static int __init dm2_pair_b_init(void)
{
	pr_info("dm2_pair_b: %d\n", dm2_pair_a_answer());
	return 0;
}

module_init(dm2_pair_b_init);
MODULE_LICENSE("GPL");
