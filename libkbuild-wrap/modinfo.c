/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * modinfo keys of a built .ko, read with elfutils' libelf.
 *
 * The module comes out of a build, so its bytes are the build's: anything at all. libkmod
 * (what modinfo uses) asserts on some malformed ELF files (kmod 30: a section-name index
 * of 0 aborts in elf_get_section_header()), which would take dm2d down with the build;
 * libelf checks every header and section against the file and fails instead.
 */
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>

#include "kbw-internal.h"

static void elf_endp(Elf **e)
{
	if (*e)
		elf_end(*e);
}

/* The value of the first "KEY=value" string in a .modinfo section. */
static int modinfo_find(const char *data, size_t size, const char *key, char **ret)
{
	size_t key_len = strlen(key);

	for (size_t i = 0; i < size;) {
		const char *s = data + i;
		size_t n = strnlen(s, size - i);

		if (n > key_len && s[key_len] == '=' && memcmp(s, key, key_len) == 0) {
			char *v = strndup(s + key_len + 1, n - key_len - 1);

			if (!v)
				return -ENOMEM;
			*ret = v;
			return 0;
		}
		i += n + 1;
	}
	return -ENODATA;
}

KBW_EXPORT int kbw_module_info(const char *path, const char *key, char **ret)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_(elf_endp) Elf *elf = NULL;
	struct stat st;
	GElf_Ehdr ehdr;
	size_t n_sections, names;
	Elf_Scn *modinfo = NULL;
	Elf_Data *data;
	char *value;
	int r;

	if (!path || !key || !key[0] || strchr(key, '=') || !ret)
		return -EINVAL;
	if (elf_version(EV_CURRENT) == EV_NONE)
		return -ENOSYS;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	/* Mapped, not read: a module may be large. The callers pass the staged copy, which
	 * is dm2's own file and no build process is left to shrink under the mapping. */
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf || elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, &ehdr) ||
	    elf_getshdrnum(elf, &n_sections) < 0 || elf_getshdrstrndx(elf, &names) < 0)
		return -ENOEXEC;
	/* libelf sees no sections where the header's lie outside the file, and reads them
	 * whatever size the header gives them; the kernel's loader refuses both. */
	if (ehdr.e_shnum != 0 && ehdr.e_shnum != n_sections)
		return -ENOEXEC;
	if (n_sections > 0 && ehdr.e_shentsize != gelf_fsize(elf, ELF_T_SHDR, 1, EV_CURRENT))
		return -ENOEXEC;
	/* Every section, not just .modinfo: its header readable, its name in the name table,
	 * its bytes inside the file, as the kernel's loader wants them. depmod (libkmod)
	 * reads other sections too, and asserts on an empty one that starts at the end. */
	if (fstat(fd, &st) < 0)
		return -errno;
	for (size_t i = 1; i < n_sections; i++) {
		Elf_Scn *scn = elf_getscn(elf, i);
		GElf_Shdr shdr;
		const char *name;

		if (!scn || !gelf_getshdr(scn, &shdr))
			return -ENOEXEC;
		name = elf_strptr(elf, names, shdr.sh_name);
		if (!name)
			return -ENOEXEC;
		if (shdr.sh_type == SHT_NOBITS)
			continue;
		if (shdr.sh_offset >= (uint64_t) st.st_size ||
		    shdr.sh_size > (uint64_t) st.st_size - shdr.sh_offset)
			return -ENOEXEC;
		if (!modinfo && streq(name, ".modinfo"))
			modinfo = scn;
	}
	if (!modinfo)
		return -ENODATA;
	data = elf_rawdata(modinfo, NULL);
	if (!data)
		return -ENOEXEC;
	r = modinfo_find(data->d_buf, data->d_size, key, &value);
	if (r < 0)
		return r;
	*ret = value;
	return 0;
}

KBW_EXPORT int kbw_module_vermagic(const char *path, char **ret)
{
	return kbw_module_info(path, "vermagic", ret);
}
