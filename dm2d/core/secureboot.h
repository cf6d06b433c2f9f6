/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

#include "shared/macro.h"

/*
 * Secure Boot and MOK state, read from the firmware's variables beneath a root
 * (sys/firmware/efi/efivars: 4 bytes of attributes, then the data), so that tests and
 * chroots can give their own. dm2's certificate is "enrolled" when MokListRT (shim's
 * runtime copy of the MOK list, an array of EFI_SIGNATURE_LIST) holds an X.509 entry with
 * its DER bytes, "pending" when MokNew (mokutil --import's request, the same format)
 * does.
 */
#define EFIVARS_DIR "sys/firmware/efi/efivars"
#define EFI_GLOBAL_GUID "8be4df61-93ca-11d2-aa0d-00e098032b8c"
#define SHIM_LOCK_GUID "605dab50-e046-4300-abb6-3dd810dd8b23"

enum mok_state {
	MOK_ENROLLED,
	MOK_PENDING,
	MOK_NOT_ENROLLED,
	MOK_NO_CERTIFICATE, /* dm2 has no certificate yet */
	MOK_UNKNOWN,	    /* no EFI, no shim, or a certificate in a token */
	_MOK_STATE_MAX,
	_MOK_STATE_INVALID = -EINVAL,
};
const char *mok_state_to_string(enum mok_state s); /* "enrolled", "not-enrolled", ... */

struct secureboot_state {
	int efi;	 /* 1: the firmware's variables are there */
	int secure_boot; /* 1 on, 0 off, -1 unknown (no EFI or no SecureBoot variable) */
	enum mok_state mok;
};

/* The DER of a certificate file's contents: DER as it is, or the first PEM CERTIFICATE
 * block decoded. -EBADMSG for anything else. */
int cert_to_der(const char *text, size_t size, void **ret, size_t *ret_size);

/* 1 if the EFI_SIGNATURE_LIST array data holds an X.509 entry equal to der, 0 if not,
 * -EBADMSG when a list's sizes do not add up. */
int efi_siglist_has_x509(const void *data, size_t size, const void *der, size_t der_size);

/* Firmware state beneath root_fd; cert_der NULL: dm2 has no certificate (or it is in a
 * token). Unreadable or malformed variables count as unknown, never an error: only
 * -ENOMEM fails. */
int secureboot_probe(int root_fd, const void *cert_der, size_t cert_size,
		     struct secureboot_state *ret);
