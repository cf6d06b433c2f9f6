// SPDX-License-Identifier: GPL-2.0
/* Exports a symbol that dm2_pair_b (same package) and dm2_user (another package) use. */
#include <linux/module.h>

int dm2_pair_a_answer(void)
{
	return 42;
}
EXPORT_SYMBOL_GPL(dm2_pair_a_answer);

MODULE_LICENSE("GPL");
