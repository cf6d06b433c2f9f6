// SPDX-License-Identifier: GPL-2.0
/* An innocent module built after a hostile one. */
#include <linux/module.h>

static int __init dm2_victim_init(void)
{
	return 0;
}

static void __exit dm2_victim_exit(void)
{
}

module_init(dm2_victim_init);
module_exit(dm2_victim_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("dm2 victim test module");
