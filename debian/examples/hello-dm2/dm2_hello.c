// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm2_hello: the module of the example package of dh_dm2(1). Reading /dev/dm2_hello returns the
 * greeting set with the module parameter "greeting" followed by a newline.
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/string.h>

static char *greeting = "Hello from dm2";
module_param(greeting, charp, 0444);
MODULE_PARM_DESC(greeting, "Text returned by reading /dev/dm2_hello");

static ssize_t dm2_hello_read(struct file *file, char __user *buf, size_t count,
				loff_t *ppos)
{
	char text[128];
	int len;

	len = scnprintf(text, sizeof(text), "%s\n", greeting);
	return simple_read_from_buffer(buf, count, ppos, text, len);
}

static const struct file_operations dm2_hello_fops = {
	.owner = THIS_MODULE,
	.read = dm2_hello_read,
	.llseek = default_llseek,
};

static struct miscdevice dm2_hello_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "dm2_hello",
	.fops = &dm2_hello_fops,
	.mode = 0444,
};

static int __init dm2_hello_init(void)
{
	return misc_register(&dm2_hello_dev);
}

static void __exit dm2_hello_exit(void)
{
	misc_deregister(&dm2_hello_dev);
}

module_init(dm2_hello_init);
module_exit(dm2_hello_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("dm2 example module: a misc device that greets its reader");
MODULE_AUTHOR("dm2 developers");
MODULE_VERSION("1.0");
