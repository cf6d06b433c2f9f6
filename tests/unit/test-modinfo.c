/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kbw_module_info() on what a hostile build can leave as its module: a real object, and
 * ELF files with headers that lie. Each is an error or a value, never an abort (libkmod,
 * which dm2 used before, asserts on a section-name index of 0).
 */
#include <elf.h>
#include <fcntl.h>

#include "libkbuild-wrap.h"
#include "pipeline/compress.h"
#include "shared/fs-util.h"
#include "shared/util.h"
#include "tests.h"

/* An ELF64 relocatable object: [0] null, [1] .modinfo holding MODINFO (SIZE bytes),
 * [2] .shstrtab, [3] __versions (what depmod reads); a test may then break any header. */
struct elf_image {
	uint8_t bytes[1024];
	size_t size;
	Elf64_Ehdr *eh;
	Elf64_Shdr *sh;
};

static void elf_image_init(struct elf_image *img, const char *modinfo, size_t size)
{
	static const char names[] = "\0.modinfo\0.shstrtab\0__versions";
	size_t off = sizeof(Elf64_Ehdr);

	*img = (struct elf_image){};
	img->eh = (Elf64_Ehdr *) img->bytes;
	memcpy(img->eh->e_ident, ELFMAG, SELFMAG);
	img->eh->e_ident[EI_CLASS] = ELFCLASS64;
	img->eh->e_ident[EI_DATA] = ELFDATA2LSB;
	img->eh->e_ident[EI_VERSION] = EV_CURRENT;
	img->eh->e_type = ET_REL;
	img->eh->e_machine = EM_X86_64;
	img->eh->e_version = EV_CURRENT;
	img->eh->e_ehsize = sizeof(Elf64_Ehdr);
	img->eh->e_shentsize = sizeof(Elf64_Shdr);
	img->eh->e_shnum = 4;
	img->eh->e_shstrndx = 2;

	assert_true(size + sizeof(names) + 64 + 4 * sizeof(Elf64_Shdr) + 16 < 1024 - off);
	memcpy(img->bytes + off, modinfo, size);
	size_t modinfo_off = off;
	off += size;
	memcpy(img->bytes + off, names, sizeof(names));
	size_t names_off = off;
	off += sizeof(names);
	size_t versions_off = off;
	off = (off + 64 + 7) & ~(size_t) 7;

	img->eh->e_shoff = off;
	img->sh = (Elf64_Shdr *) (img->bytes + off);
	img->sh[1] = (Elf64_Shdr){.sh_name = 1, .sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC,
				  .sh_offset = modinfo_off, .sh_size = size, .sh_addralign = 1};
	img->sh[2] = (Elf64_Shdr){.sh_name = 10, .sh_type = SHT_STRTAB,
				  .sh_offset = names_off, .sh_size = sizeof(names),
				  .sh_addralign = 1};
	img->sh[3] = (Elf64_Shdr){.sh_name = 20, .sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC,
				  .sh_offset = versions_off, .sh_size = 64, .sh_addralign = 1};
	img->size = off + 4 * sizeof(Elf64_Shdr);
}

#define MODINFO "license=GPL\0vermagic=6.1.0-99 SMP mod_unload\0licensed=no"

static int info_of(struct test_root *t, const struct elf_image *img, const char *key,
		   char **ret)
{
	_cleanup_free_ char *path = path_join(t->path, "m.ko");

	assert_non_null(path);
	ASSERT_OK(write_file_atomic_at(t->fd, "m.ko", img->bytes, img->size, 0644));
	return kbw_module_info(path, key, ret);
}

/* A macro, so that a failure names the case's line. */
#define expect_error(t, img, error)                                                       \
	do {                                                                              \
		char *_v = NULL;                                                          \
                                                                                          \
		assert_int_equal(info_of(t, img, "license", &_v), error);                 \
		assert_null(_v);                                                          \
	} while (0)

/* Well-formed: the first KEY=, not a key that starts with KEY; the last string may lack
 * its NUL. */
static void test_values(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_free_ char *license = NULL, *vermagic = NULL, *licensed = NULL;
	struct elf_image img;
	char *none = NULL;

	elf_image_init(&img, MODINFO, sizeof(MODINFO) - 1);
	ASSERT_OK(info_of(t, &img, "license", &license));
	assert_string_equal(license, "GPL");
	ASSERT_OK(info_of(t, &img, "vermagic", &vermagic));
	assert_string_equal(vermagic, "6.1.0-99 SMP mod_unload");
	ASSERT_OK(info_of(t, &img, "licensed", &licensed));
	assert_string_equal(licensed, "no");
	assert_int_equal(info_of(t, &img, "author", &none), -ENODATA);
	assert_int_equal(info_of(t, &img, "", &none), -EINVAL);
	assert_int_equal(info_of(t, &img, "license=GPL", &none), -EINVAL);
	assert_null(none);
}

/* Headers that point outside the file or at nothing. */
static void test_lying_headers(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	struct elf_image img;

	/* What aborted libkmod 30: no section-name table (index 0). */
	elf_image_init(&img, MODINFO, sizeof(MODINFO));
	img.eh->e_shstrndx = SHN_UNDEF;
	expect_error(t, &img, -ENOEXEC);
	/* A section-name table past the last section. */
	elf_image_init(&img, MODINFO, sizeof(MODINFO));
	img.eh->e_shstrndx = 7;
	expect_error(t, &img, -ENOEXEC);
	/* Section headers past the end of the file. */
	elf_image_init(&img, MODINFO, sizeof(MODINFO));
	img.eh->e_shoff = 1u << 20;
	expect_error(t, &img, -ENOEXEC);
	/* .modinfo's bytes past the end of the file, then wrapping around. */
	elf_image_init(&img, MODINFO, sizeof(MODINFO));
	img.sh[1].sh_offset = 1u << 20;
	expect_error(t, &img, -ENOEXEC);
	elf_image_init(&img, MODINFO, sizeof(MODINFO));
	img.sh[1].sh_size = UINT64_MAX - 8;
	expect_error(t, &img, -ENOEXEC);
	/* Another section's bytes past the end: libelf alone would still read .modinfo,
	 * depmod would assert. */
	elf_image_init(&img, MODINFO, sizeof(MODINFO));
	img.sh[3].sh_offset = img.size;
	expect_error(t, &img, -ENOEXEC);
	elf_image_init(&img, MODINFO, sizeof(MODINFO));
	img.sh[3].sh_size = img.size;
	expect_error(t, &img, -ENOEXEC);
	/* Empty, starting right at the end: libkmod checks offset + size, then asserts
	 * offset < size when it reads the section. */
	elf_image_init(&img, MODINFO, sizeof(MODINFO));
	img.sh[3].sh_offset = img.size;
	img.sh[3].sh_size = 0;
	expect_error(t, &img, -ENOEXEC);
	/* A section name past the end of the name table, for .modinfo and another. */
	elf_image_init(&img, MODINFO, sizeof(MODINFO));
	img.sh[3].sh_name = 4000;
	expect_error(t, &img, -ENOEXEC);
	elf_image_init(&img, MODINFO, sizeof(MODINFO));
	img.sh[1].sh_name = 4000;
	expect_error(t, &img, -ENOEXEC);
	/* Cut in the middle of the section headers. */
	elf_image_init(&img, MODINFO, sizeof(MODINFO));
	img.size -= 40;
	expect_error(t, &img, -ENOEXEC);
	/* A wrong section header size. */
	elf_image_init(&img, MODINFO, sizeof(MODINFO));
	img.eh->e_shentsize = 12;
	expect_error(t, &img, -ENOEXEC);
	/* .modinfo that is SHT_NOBITS: no bytes in the file. */
	elf_image_init(&img, MODINFO, sizeof(MODINFO));
	img.sh[1].sh_type = SHT_NOBITS;
	expect_error(t, &img, -ENODATA);
}

/* Not an ELF object at all: text, nothing, and a compressed module (kbuild's outputs are
 * never compressed; modules_install compresses, and dm2 does that itself). */
static void test_not_elf(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_free_ void *xz = NULL;
	struct elf_image img = {.size = 0};
	size_t n;

	expect_error(t, &img, -ENOEXEC);
	memcpy(img.bytes, "not a module\n", 13);
	img.size = 13;
	expect_error(t, &img, -ENOEXEC);
	elf_image_init(&img, MODINFO, sizeof(MODINFO));
	ASSERT_OK(module_compress(KBW_COMPRESSION_XZ, img.bytes, img.size, &xz, &n));
	assert_true(n < sizeof(img.bytes));
	memcpy(img.bytes, xz, n);
	img.size = n;
	expect_error(t, &img, -ENOEXEC);
	/* No such file. */
	{
		_cleanup_free_ char *p = path_join(t->path, "missing.ko");
		char *v = NULL;

		assert_int_equal(kbw_module_info(p, "license", &v), -ENOENT);
	}
}

/* A real object from gcc, the way kbuild's .ko carry their .modinfo. */
static void test_real_object(void **state)
{
	_cleanup_(test_root_freep) struct test_root *t = test_root_new();
	_cleanup_free_ char *c = path_join(t->path, "m.c"), *o = path_join(t->path, "m.o");
	_cleanup_free_ char *license = NULL, *name = NULL;

	test_write_file(t->fd, "m.c",
			"static const char mi[] __attribute__((section(\".modinfo\"), used)) ="
			" \"license=Dual MIT/GPL\\0name=dm2_modinfo_test\\0\";\n"
			"int init_module(void) { return 0; }\n");
	assert_int_equal(test_system("gcc -c -o '%s' '%s'", o, c), 0);
	ASSERT_OK(kbw_module_info(o, "license", &license));
	assert_string_equal(license, "Dual MIT/GPL");
	ASSERT_OK(kbw_module_info(o, "name", &name));
	assert_string_equal(name, "dm2_modinfo_test");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_lying_headers),
		cmocka_unit_test(test_not_elf),
		cmocka_unit_test(test_real_object),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
