/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Git tree ids of directories, computed the way git hashes blobs and trees. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include "pipeline/gittree.h"
#include "shared/util.h"

#define SHA1_SIZE 20

struct tree_entry {
	char *name;
	bool is_dir;
	const char *mode;
	uint8_t id[SHA1_SIZE];
};

static void evp_md_ctx_freep(EVP_MD_CTX **c)
{
	EVP_MD_CTX_free(*c);
}

/* Hash "<type> <len>\0" followed by data from fd (or from buf when fd < 0). */
static int hash_object(const char *type, int fd, const void *buf, uint64_t len,
		       uint8_t out[SHA1_SIZE])
{
	_cleanup_(evp_md_ctx_freep) EVP_MD_CTX *c = EVP_MD_CTX_new();
	char header[64];
	uint64_t done = 0;
	int n;

	if (!c)
		return -ENOMEM;
	n = snprintf(header, sizeof(header), "%s %" PRIu64, type, len);
	if (EVP_DigestInit_ex(c, EVP_sha1(), NULL) != 1 ||
	    EVP_DigestUpdate(c, header, (size_t) n + 1) != 1)
		return -EIO;
	if (fd < 0) {
		if (len > 0 && EVP_DigestUpdate(c, buf, len) != 1)
			return -EIO;
	} else {
		uint8_t b[65536];

		while (done < len) {
			ssize_t k = read(fd, b, sizeof(b));

			if (k < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			if (k == 0)
				return -EIO; /* file shrank while hashing */
			if (EVP_DigestUpdate(c, b, (size_t) k) != 1)
				return -EIO;
			done += (uint64_t) k;
		}
	}
	if (EVP_DigestFinal_ex(c, out, NULL) != 1)
		return -EIO;
	return 0;
}

/* git's base_name_compare(): a directory sorts as if its name ended in '/'. */
static int entry_cmp(const void *a, const void *b)
{
	const struct tree_entry *x = a, *y = b;
	size_t lx = strlen(x->name), ly = strlen(y->name), l = MIN(lx, ly);
	int c = memcmp(x->name, y->name, l);
	unsigned char cx, cy;

	if (c != 0)
		return c;
	cx = lx > l ? (unsigned char) x->name[l] : (x->is_dir ? '/' : '\0');
	cy = ly > l ? (unsigned char) y->name[l] : (y->is_dir ? '/' : '\0');
	return (int) cx - (int) cy;
}

static void entries_free(struct tree_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].name);
	free(e);
}

static int hash_tree_fd(int dir_fd, uint8_t out[SHA1_SIZE], bool *ret_empty,
			unsigned depth);

/* Mode and id of one directory entry; *ret_skip for what git does not record (an empty
 * directory). */
static int hash_entry(int dir_fd, const char *name, struct tree_entry *e, bool *ret_skip,
		      unsigned depth)
{
	struct stat st;

	*ret_skip = false;
	if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISREG(st.st_mode)) {
		_cleanup_close_ int f =
			openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (f < 0)
			return -errno;
		e->mode = (st.st_mode & S_IXUSR) ? "100755" : "100644";
		return hash_object("blob", f, NULL, (uint64_t) st.st_size, e->id);
	}
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t k = readlinkat(dir_fd, name, target, sizeof(target));

		if (k < 0)
			return -errno;
		e->mode = "120000";
		return hash_object("blob", -1, target, (uint64_t) k, e->id);
	}
	if (S_ISDIR(st.st_mode)) {
		_cleanup_close_ int sub = openat(
			dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			return -errno;
		e->mode = "40000";
		e->is_dir = true;
		return hash_tree_fd(sub, e->id, ret_skip, depth + 1);
	}
	return -EBADMSG;
}

static int entries_append(struct tree_entry **entries, size_t *n, struct tree_entry *e,
			  const char *name)
{
	struct tree_entry *ne = realloc(*entries, sizeof(**entries) * (*n + 1));

	if (!ne)
		return -ENOMEM;
	*entries = ne;
	e->name = strdup(name);
	if (!e->name)
		return -ENOMEM;
	(*entries)[(*n)++] = *e;
	return 0;
}

/* The tree object of the entries, in git's order. */
static int hash_entries(struct tree_entry *entries, size_t n, uint8_t out[SHA1_SIZE])
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t buf_len = 0;

	if (n > 0)
		qsort(entries, n, sizeof(*entries), entry_cmp);
	for (size_t i = 0; i < n; i++) {
		size_t ml = strlen(entries[i].mode), nl = strlen(entries[i].name);
		size_t need = buf_len + ml + 1 + nl + 1 + SHA1_SIZE;
		uint8_t *nb = realloc(buf, need);

		if (!nb)
			return -ENOMEM;
		buf = nb;
		memcpy(buf + buf_len, entries[i].mode, ml);
		buf[buf_len + ml] = ' ';
		memcpy(buf + buf_len + ml + 1, entries[i].name, nl + 1);
		memcpy(buf + buf_len + ml + 1 + nl + 1, entries[i].id, SHA1_SIZE);
		buf_len = need;
	}
	return hash_object("tree", -1, buf, buf_len, out);
}

/* Hash the tree below dir_fd; *ret_empty says git would not record it at all. */
static int hash_tree_fd(int dir_fd, uint8_t out[SHA1_SIZE], bool *ret_empty,
			unsigned depth)
{
	struct tree_entry *entries = NULL;
	size_t n = 0;
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	if (depth > 256)
		return -ELOOP;
	fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		safe_close(fd);
		return -errno;
	}

	while ((errno = 0, de = readdir(d))) {
		struct tree_entry e = {};
		bool skip;

		if (streq(de->d_name, ".") || streq(de->d_name, "..") ||
		    streq(de->d_name, ".git"))
			continue;
		r = hash_entry(dirfd(d), de->d_name, &e, &skip, depth);
		if (r < 0)
			goto finish;
		if (skip)
			continue;
		r = entries_append(&entries, &n, &e, de->d_name);
		if (r < 0)
			goto finish;
	}
	if (errno != 0) {
		r = -errno;
		goto finish;
	}

	r = hash_entries(entries, n, out);
	if (r >= 0)
		*ret_empty = n == 0;
finish:
	entries_free(entries, n);
	closedir(d);
	return r;
}

int gittree_hash_dir(int dir_fd, const char *path, char ret[41])
{
	_cleanup_close_ int fd = -EBADF;
	uint8_t id[SHA1_SIZE];
	bool empty;
	int r;

	fd = openat(dir_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = hash_tree_fd(fd, id, &empty, 0);
	if (r < 0)
		return r;
	for (size_t i = 0; i < SHA1_SIZE; i++)
		snprintf(ret + 2 * i, 3, "%02x", id[i]);
	return 0;
}
