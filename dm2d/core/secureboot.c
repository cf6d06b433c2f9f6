/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "core/secureboot.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

/* MokListRT of a machine with many keys is a few KiB; firmware caps a variable far lower.
 */
#define EFIVAR_MAX_SIZE (1U << 20)
#define SIGLIST_HEADER_SIZE                                                              \
	28 /* GUID type, u32 list size, u32 header size, u32 entry size */
#define SIG_OWNER_SIZE 16
#define MOK_VARIABLES_DIR "sys/firmware/efi/mok-variables"

/* EFI_CERT_X509_GUID a5c059a1-94e4-4aa7-87b5-ab155c2bf072 as it is stored (the first
 * three fields little-endian). */
static const uint8_t cert_x509_guid[16] = {0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94,
					   0xa7, 0x4a, 0x87, 0xb5, 0xab, 0x15,
					   0x5c, 0x2b, 0xf0, 0x72};

static const char *const mok_state_table[_MOK_STATE_MAX] = {
	[MOK_ENROLLED] = "enrolled",	     [MOK_PENDING] = "pending",
	[MOK_NOT_ENROLLED] = "not-enrolled", [MOK_NO_CERTIFICATE] = "no-certificate",
	[MOK_UNKNOWN] = "unknown",
};

const char *mok_state_to_string(enum mok_state s)
{
	return s >= 0 && s < _MOK_STATE_MAX ? mok_state_table[s] : NULL;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 |
	       (uint32_t) p[3] << 24;
}

int efi_siglist_has_x509(const void *data, size_t size, const void *der, size_t der_size)
{
	const uint8_t *p = data, *end = p + size;
	bool found = false;

	while (p < end) {
		uint32_t list, header, entry;

		if ((size_t) (end - p) < SIGLIST_HEADER_SIZE)
			return -EBADMSG;
		list = le32(p + 16);
		header = le32(p + 20);
		entry = le32(p + 24);
		if (list < SIGLIST_HEADER_SIZE || list > (size_t) (end - p) ||
		    header > list - SIGLIST_HEADER_SIZE || entry <= SIG_OWNER_SIZE ||
		    (list - SIGLIST_HEADER_SIZE - header) % entry != 0)
			return -EBADMSG;
		if (memcmp(p, cert_x509_guid, sizeof(cert_x509_guid)) == 0)
			for (const uint8_t *e = p + SIGLIST_HEADER_SIZE + header;
			     e < p + list; e += entry)
				if (entry - SIG_OWNER_SIZE == der_size &&
				    memcmp(e + SIG_OWNER_SIZE, der, der_size) == 0)
					found = true;
		p += list;
	}
	return found;
}

static int b64_value(char c)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *x = c ? strchr(alphabet, c) : NULL;

	return x ? (int) (x - alphabet) : -1;
}

/* The body of one PEM block: base64 with line breaks, '=' padding at the end. */
static int pem_decode(const char *b, const char *e, void **ret, size_t *ret_size)
{
	_cleanup_free_ uint8_t *out = malloc((size_t) (e - b) / 4 * 3 + 3);
	uint32_t acc = 0;
	size_t n = 0;
	int bits = 0;

	if (!out)
		return -ENOMEM;
	for (; b < e && *b != '='; b++) {
		int v = b64_value(*b);

		if (strchr(" \t\r\n", *b))
			continue;
		if (v < 0)
			return -EBADMSG;
		acc = acc << 6 | (uint32_t) v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (uint8_t) (acc >> bits);
		}
	}
	if (n == 0)
		return -EBADMSG;
	*ret = TAKE_PTR(out);
	*ret_size = n;
	return 0;
}

int cert_to_der(const char *text, size_t size, void **ret, size_t *ret_size)
{
	static const char begin[] = "-----BEGIN CERTIFICATE-----",
			  end[] = "-----END CERTIFICATE-----";
	const char *b, *e;

	/* DER: a SEQUENCE. */
	if (size > 0 && (uint8_t) text[0] == 0x30) {
		void *d = malloc(size);

		if (!d)
			return -ENOMEM;
		memcpy(d, text, size);
		*ret = d;
		*ret_size = size;
		return 0;
	}
	if (memchr(text, '\0', size))
		return -EBADMSG;
	b = strstr(text, begin);
	e = b ? strstr(b, end) : NULL;
	if (!e)
		return -EBADMSG;
	return pem_decode(b + strlen(begin), e, ret, ret_size);
}

/* The data of an efivar (after its 4 attribute bytes); -ENOENT when there is none. */
static int efivar_read(int root_fd, const char *name, const char *guid, char **ret,
		       size_t *ret_size)
{
	_cleanup_free_ char *path = NULL, *data = NULL;
	size_t size;
	int r;

	path = strjoin(EFIVARS_DIR "/", name, "-", guid);
	if (!path)
		return -ENOMEM;
	r = read_full_file_at(root_fd, path, EFIVAR_MAX_SIZE, &data, &size);
	if (r < 0)
		return r;
	if (size < 4)
		return -EBADMSG;
	memmove(data, data + 4, size - 4);
	*ret = TAKE_PTR(data);
	*ret_size = size - 4;
	return 0;
}

/* 1 when the variable lists der, 0 when not or it is not there, < 0 when unreadable. */
static int efivar_has_cert(int root_fd, const char *name, const void *der,
			   size_t der_size)
{
	_cleanup_free_ char *data = NULL;
	size_t size;
	int r;

	r = efivar_read(root_fd, name, SHIM_LOCK_GUID, &data, &size);
	if (r == -ENOENT && streq(name, "MokListRT")) {
		/* Linux >= 5.10 also exports shim's lists without attributes, whole even
		 * when they are too big for an efivar. */
		r = read_full_file_at(root_fd, MOK_VARIABLES_DIR "/MokListRT",
				      EFIVAR_MAX_SIZE, &data, &size);
	}
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	return efi_siglist_has_x509(data, size, der, der_size);
}

int secureboot_probe(int root_fd, const void *cert_der, size_t cert_size,
		     struct secureboot_state *ret)
{
	_cleanup_free_ char *sb = NULL;
	struct secureboot_state s = {.secure_boot = -1, .mok = MOK_UNKNOWN};
	struct stat st;
	size_t n;
	int r;

	s.efi = fstatat(root_fd, EFIVARS_DIR, &st, 0) >= 0 && S_ISDIR(st.st_mode);
	r = efivar_read(root_fd, "SecureBoot", EFI_GLOBAL_GUID, &sb, &n);
	if (r == -ENOMEM)
		return r;
	if (r >= 0 && n >= 1)
		s.secure_boot = sb[0] == 1;

	if (!cert_der)
		s.mok = MOK_NO_CERTIFICATE;
	else if (s.efi) {
		r = efivar_has_cert(root_fd, "MokListRT", cert_der, cert_size);
		if (r == -ENOMEM)
			return r;
		if (r > 0)
			s.mok = MOK_ENROLLED;
		else if (r == 0) {
			r = efivar_has_cert(root_fd, "MokNew", cert_der, cert_size);
			if (r == -ENOMEM)
				return r;
			s.mok = r > 0	 ? MOK_PENDING
				: r == 0 ? MOK_NOT_ENROLLED
					 : MOK_UNKNOWN;
		} else
			log_debug_errno(r, "Cannot read MokListRT, ignoring: %m");
	}
	*ret = s;
	return 0;
}
