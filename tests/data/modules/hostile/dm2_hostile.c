// SPDX-License-Identifier: GPL-2.0
/* The module of the hostile test source: harmless itself; its Kbuild is not. */
#include <linux/module.h>

static int __init dm2_hostile_init(void)
{
	return 0;
}

static void __exit dm2_hostile_exit(void)
{
}

module_init(dm2_hostile_init);
module_exit(dm2_hostile_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("dm2 hostile test module");
