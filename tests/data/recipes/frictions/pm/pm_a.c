// SPDX-License-Identifier: GPL-2.0-only
#include <linux/module.h>
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("dm2 test module pm_a");
