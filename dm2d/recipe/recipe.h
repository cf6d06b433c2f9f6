/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "shared/macro.h"

/* The largest recipe or dkms.conf file read. */
#define RECIPE_MAX_SIZE (1024U * 1024U)

/* dm2-recipe(5). A recipe is immutable once loaded; a reload builds new ones. */

enum recipe_origin {
	RECIPE_ORIGIN_ADMIN,   /* etc/dm2/recipes.d */
	RECIPE_ORIGIN_VENDOR,  /* usr/share/dm2/recipes */
	RECIPE_ORIGIN_EXTRA,   /* a --recipes directory */
	RECIPE_ORIGIN_DKMS,    /* usr/src/NAME-VER/dkms.conf */
	RECIPE_ORIGIN_FILE,    /* named on the command line */
	_RECIPE_ORIGIN_MAX,
	_RECIPE_ORIGIN_INVALID = -EINVAL,
};
DECLARE_STRING_TABLE(recipe_origin);

enum range_op {
	RANGE_OP_LT,
	RANGE_OP_LE,
	RANGE_OP_GT,
	RANGE_OP_GE,
	RANGE_OP_EQ,
	_RANGE_OP_MAX,
	_RANGE_OP_INVALID = -EINVAL,
};

/* "Kernel=>=6.8 <6.12": every constraint must hold. */
struct kernel_range {
	struct {
		enum range_op op;
		char *version;
	} *c;
	size_t n;
	char *text; /* as written */
};
int kernel_range_parse(const char *s, struct kernel_range *ret);
bool kernel_range_match(const struct kernel_range *r, const char *kernel_version);
void kernel_range_done(struct kernel_range *r);

struct recipe_patch {
	char *path;  /* absolute path of the patch file */
	char *match; /* DKMS PATCH_MATCH: POSIX ERE the kernel release must match, or NULL */
	struct kernel_range kernel; /* "Patch=FILE RANGE": the kernels it is for; n == 0: all */
};
/* Whether a patch's kernel range holds for a kernel version (as for [Source] Kernel=:
 * kbw_kernel_version(), "6.1.192" for Debian's 6.1.0-56-amd64). PATCH_MATCH is the
 * pipeline's: a bad expression is a failure there. */
bool recipe_patch_for_kernel(const struct recipe_patch *p, const char *kernel_version);

struct recipe_source {
	char *version;
	char **urls;            /* URL=, tried in order (https, http, file) */
	char *path;             /* Path=: absolute directory (a relative one is made absolute
				 * against the recipe's directory at load time) */
	char *sha256;           /* SHA256= of the downloaded archive (lower-case hex) */
	char *git_tree;         /* GitTree= of the unpacked content (lower-case hex) */
	struct kernel_range kernel; /* Kernel=, n == 0 means any */
	struct recipe_patch *patches;
	size_t n_patches;
	unsigned line;          /* where its [Source] section starts */
};

struct recipe_module {
	char *name;             /* module name as built, without .ko */
	char *built_location;   /* directory relative to the build dir where the .ko appears ("" = top) */
	char *dest_name;        /* name to install as, without .ko (default: name) */
	char *dest_dir;         /* directory relative to lib/modules/KVER (default: install_dir) */
	bool strip;             /* strip -g before signing */
};

struct recipe {
	unsigned n_ref;

	char *name;
	char *description;
	char *license;
	char *path;             /* file it was loaded from (absolute) */
	char *dir;              /* directory of that file (patches, relative Path=) */
	enum recipe_origin origin;
	uint64_t content_crc;   /* CRC-64 of the file's bytes (and content_more's): how dm2d
				 * notices a change */
	char **content_more;    /* further files that are part of the content: the admin's
				 * /etc/dkms overrides of a dkms.conf */
	char *content_hash;     /* sha256 of the same bytes (part of the build key); NULL until
				 * recipe_content_hash() */

	struct recipe_source *sources;
	size_t n_sources;

	/* [Build] */
	char *subdir;           /* Directory=: where the Kbuild file is, relative to the source */
	struct recipe_module *modules;
	size_t n_modules;
	char **make_vars;       /* MakeVariable=KEY=VALUE, repeatable */
	char **require_config;  /* RequireConfig=CONFIG_A CONFIG_B (must be y or m); a leading '!'
				 * means the option must not be set */
	char **arches;          /* Arch=, uname -m names; empty = any */
	char **needs;           /* Needs=: recipes whose Module.symvers this one links against */

	/* [Install] */
	char *install_dir;      /* Directory= under lib/modules/KVER (default "updates/dm2") */

	/* Mostly for dkms.conf imports. */
	bool autoinstall;       /* built automatically for new kernels (recipes: always) */
	char *make_command;     /* custom build command line (DKMS MAKE[]), run via /bin/sh -c */
	char *clean_command;    /* DKMS CLEAN, informational: each build starts from a fresh copy */
	char *dkms_pre_build;   /* DKMS PRE_BUILD / POST_BUILD: "SCRIPT ARGS" relative to the */
	char *dkms_post_build;  /* build dir, run in the build sandbox before / after make */
	char *exclusive_kernel; /* DKMS BUILD_EXCLUSIVE_KERNEL: ERE the release must match */
	char *exclusive_arch;   /* DKMS BUILD_EXCLUSIVE_ARCH: ERE the arch must match */
};

int recipe_new(struct recipe **ret);
struct recipe *recipe_ref(struct recipe *r);
struct recipe *recipe_unref(struct recipe *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct recipe *, recipe_unref);

/*
 * Load and validate one recipe file. Every problem found is reported through the diagnostic
 * callback as "FILE:LINE: message" (one call per problem); the function then fails with
 * -EBADMSG. Without a callback problems are logged at debug level only.
 */
typedef void (*recipe_diag_fn)(const char *file, unsigned line, const char *message,
			       void *userdata);
int recipe_load(const char *path, enum recipe_origin origin, recipe_diag_fn diag,
		void *userdata, struct recipe **ret);

/*
 * The sha256 of the recipe's file (for dkms.conf packages: of dkms.conf and its
 * content_more), computed on first use from the files, which must still have the content
 * the recipe was loaded from
 * (-ESTALE otherwise). Lives in its own file: dm2d, which only compares content_crc,
 * never links OpenSSL.
 */
int recipe_content_hash(struct recipe *r, const char **ret);
/* content_crc with one more file (of content_more) after what crc covers: its name and its
 * bytes. */
uint64_t recipe_crc_more(uint64_t crc, const char *path, const char *text, size_t size);

/*
 * Canonical text of what the build of source s (one of r's) uses besides the source's
 * content and the patches applied to it (both in the content id, see source.h): the
 * source's version, the [Build] and [Install] sections. Part of the build key, so that
 * editing or adding another [Source] leaves this one's artifacts valid. A dkms.conf is
 * bash whose effect is not all in struct recipe: its content hash is part of it too
 * (recipe_content_hash() must have run).
 */
int recipe_build_rules(const struct recipe *r, const struct recipe_source *s, char **ret);

/* The source that applies to a kernel version: the newest Version= whose Kernel= range
 * matches. NULL if none does. */
const struct recipe_source *recipe_pick_source(const struct recipe *r, const char *kernel_version);
const struct recipe_source *recipe_find_source(const struct recipe *r, const char *version);
/* Newest version overall (for listings). */
const char *recipe_latest_version(const struct recipe *r);

/* Canonical text of a recipe (sections and keys in the order of dm2-recipe(5)); loading it
 * again gives an equal recipe. Patch paths below the recipe's directory are written relative. */
int recipe_format(const struct recipe *r, char **ret);
int recipe_write(const struct recipe *r, FILE *f);
/* Name= characters: [a-zA-Z0-9_.+-], not starting with '.' or '-', at most 128 bytes. */
bool recipe_name_valid(const char *name);

/* License text is GPL-compatible ("GPL", "GPL-2.0-only", "Dual MIT/GPL", ...). */
bool license_is_gpl_compatible(const char *license);
