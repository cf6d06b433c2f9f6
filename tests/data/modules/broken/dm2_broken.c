// SPDX-License-Identifier: GPL-2.0
/* Does not compile on purpose: the build reason must be the compiler's first error. */
#include <linux/module.h>

static int __init dm2_broken_init(void)
{
	return dm2_no_such_identifier;
}

module_init(dm2_broken_init);
MODULE_LICENSE("GPL");
