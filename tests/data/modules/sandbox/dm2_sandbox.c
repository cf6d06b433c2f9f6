// SPDX-License-Identifier: GPL-2.0
/* Smallest useful module for dm2's build tests. */
#include <linux/module.h>

static int __init dm2_sandbox_init(void)
{
	pr_info("dm2_sandbox: loaded\n");
	return 0;
}

static void __exit dm2_sandbox_exit(void)
{
}

module_init(dm2_sandbox_init);
module_exit(dm2_sandbox_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("dm2 test module");
