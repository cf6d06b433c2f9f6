// SPDX-License-Identifier: GPL-2.0
/* Needs dm2_pair_a_answer from the "pair" package: KBUILD_EXTRA_SYMBOLS. */
#include <linux/module.h>

int dm2_pair_a_answer(void);

static int __init dm2_user_init(void)
{
	return dm2_pair_a_answer() == 42 ? 0 : -EINVAL;
}

module_init(dm2_user_init);
MODULE_LICENSE("GPL");
