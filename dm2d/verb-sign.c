/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2 sign|verify|key: see dm2(1). */
#include <fcntl.h>
#include <getopt.h>
#include <sys/stat.h>

#include "cli.h"
#include "compress.h"
#include "keys.h"
#include "sign.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

#define MODULE_MAX_SIZE (1024U * 1024U * 1024U)

DEFINE_TRIVIAL_CLEANUP_FUNC(struct kbw_kernel *, kbw_kernel_unref);

/* --hash, else [Signing] Hash=, else the kernel's CONFIG_MODULE_SIG_HASH, else sha256. */
static int pick_hash(struct cli *cli, const char *arg, const char *kver, char **ret)
{
	_cleanup_(kbw_kernel_unrefp) struct kbw_kernel *k = NULL;
	_cleanup_free_ char *dir = NULL;
	struct dm2_context *ctx = NULL;
	const char *h = arg;
	int r;

	if (!h) {
		r = cli_context(cli, &ctx);
		if (r < 0)
			return r;
		h = ctx->config ? ctx->config->sign_hash : NULL;
	}
	if (!h && kver) {
		if (strchr(kver, '/') || streq(kver, ".") || streq(kver, "..")) {
			log_error("Invalid kernel release '%s'.", kver);
			return -EINVAL;
		}
		dir = strjoin(ctx->root, "/" DM2_MODULES_DIR "/", kver);
		if (!dir)
			return log_oom();
		r = kbw_kernel_probe(dir, kver, &k);
		if (r < 0)
			return log_error_errno(r, "Cannot probe kernel '%s' in '%s': %m",
					       kver, dir);
		h = kbw_kernel_sig_hash(k);
		if (!h)
			log_warning("Kernel '%s' names no CONFIG_MODULE_SIG_HASH, using "
				    "sha256.",
				    kver);
	}
	if (!h)
		h = "sha256";
	if (!sign_hash_supported(h)) {
		log_error("Unsupported signature hash '%s' (use sha256, sha384 or "
			  "sha512%s).",
			  h, streq(h, "sha1") ? "; sha1 is refused" : "");
		return -EOPNOTSUPP;
	}
	*ret = strdup(h);
	return *ret ? 0 : log_oom();
}

static int read_module(const char *path, bool decompress, char **ret, size_t *ret_size,
		       enum kbw_compression *ret_comp)
{
	_cleanup_free_ char *data = NULL;
	enum kbw_compression c =
		decompress ? compression_from_filename(path) : KBW_COMPRESSION_NONE;
	void *plain;
	size_t size, plain_size;
	int r;

	r = read_full_file_at(AT_FDCWD, path, MODULE_MAX_SIZE, &data, &size);
	if (r < 0)
		return r;
	if (c != KBW_COMPRESSION_NONE) {
		r = module_decompress(c, data, size, &plain, &plain_size);
		if (r < 0)
			return r == -ENOMEM ? r : -EBADMSG;
		free(data);
		data = plain;
		size = plain_size;
	}
	*ret = TAKE_PTR(data);
	*ret_size = size;
	*ret_comp = c;
	return 0;
}

static int verb_sign_usage(void)
{
	log_error("Usage: dm2 sign FILE.ko [--key KEY --cert CERT] [--hash "
		  "sha256|sha384|sha512] "
		  "[-k KVER] [-o OUT]\n"
		  "   or: dm2 sign HASH KEY CERT MODULE [DEST]   (scripts/sign-file "
		  "order)");
	return EXIT_USAGE;
}

int verb_sign(int argc, char *argv[], struct cli *cli)
{
	static const struct option options[] = {{"key", required_argument, NULL, 'K'},
						{"cert", required_argument, NULL, 'C'},
						{"hash", required_argument, NULL, 'H'},
						{"kernel", required_argument, NULL, 'k'},
						{"output", required_argument, NULL, 'o'},
						{"help", no_argument, NULL, 'h'},
						{}};
	_cleanup_(sign_key_freep) struct sign_key *key = NULL;
	_cleanup_free_ char *hash = NULL, *own_key = NULL, *own_cert = NULL, *data = NULL;
	_cleanup_free_ void *signed_data = NULL, *out_data = NULL;
	const char *key_arg = NULL, *cert_arg = NULL, *hash_arg = NULL, *kver = NULL;
	const char *in, *out = NULL;
	enum kbw_compression comp;
	struct dm2_context *ctx;
	size_t size, signed_size, out_size;
	struct stat st;
	int c, r;

	while ((c = getopt_long(argc, argv, "hk:o:", options, NULL)) >= 0)
		switch (c) {
		case 'K':
			key_arg = optarg;
			break;
		case 'C':
			cert_arg = optarg;
			break;
		case 'H':
			hash_arg = optarg;
			break;
		case 'k':
			kver = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			(void) verb_sign_usage();
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}

	if (argc - optind >= 4 && argc - optind <= 5 && !key_arg && !cert_arg &&
	    !hash_arg && !out) {
		/* sign-file compatibility: HASH KEY CERT MODULE [DEST] */
		hash_arg = argv[optind];
		key_arg = argv[optind + 1];
		cert_arg = argv[optind + 2];
		in = argv[optind + 3];
		out = argc - optind == 5 ? argv[optind + 4] : NULL;
	} else if (argc - optind == 1)
		in = argv[optind];
	else
		return verb_sign_usage();
	if (!out)
		out = in;

	r = pick_hash(cli, hash_arg, kver, &hash);
	if (r < 0)
		return r == -EOPNOTSUPP ? EXIT_USAGE : cli_exit_code_from_errno(r);

	if (!key_arg) {
		if (cert_arg) {
			log_error("--cert needs --key.");
			return EXIT_USAGE;
		}
		r = cli_context(cli, &ctx);
		if (r < 0)
			return cli_exit_code_from_errno(r);
		r = keys_ensure(ctx, &own_key, &own_cert);
		if (r < 0) {
			log_error_errno(r, "Cannot set up the signing key in '%s/%s': %m",
					ctx->root, DM2_KEY_DIR);
			return EXIT_SIGN_FAILED;
		}
		key_arg = own_key;
		cert_arg = own_cert;
	}
	r = sign_key_load(key_arg, cert_arg, &key);
	if (r == -EKEYREJECTED) {
		log_error("Key '%s' does not belong to certificate '%s'.", key_arg,
			  strna(cert_arg));
		return EXIT_SIGN_FAILED;
	}
	if (r < 0) {
		log_error_errno(r, "Cannot load signing key '%s' / certificate '%s': %m",
				key_arg, strna(cert_arg));
		return r == -ENOENT ? EXIT_NOT_FOUND : EXIT_SIGN_FAILED;
	}

	if (stat(in, &st) < 0) {
		log_error_errno(errno, "Cannot read '%s': %m", in);
		return cli_exit_code_from_errno(-errno);
	}
	r = read_module(in, true, &data, &size, &comp);
	if (r < 0) {
		log_error_errno(r, "Cannot read module '%s': %m", in);
		return r == -EBADMSG ? EXIT_BAD_INPUT : cli_exit_code_from_errno(r);
	}
	r = module_sign(key, hash, data, size, &signed_data, &signed_size);
	if (r < 0) {
		log_error_errno(r, "Signing '%s' with %s failed: %m", in, hash);
		return EXIT_SIGN_FAILED;
	}
	/* A compressed module is signed inside and compressed again, as modules_install
	 * does. */
	r = module_compress(comp, signed_data, signed_size, &out_data, &out_size);
	if (r < 0) {
		log_error_errno(r, "Compressing '%s' failed: %m", out);
		return EXIT_SIGN_FAILED;
	}
	r = write_file_atomic_at(AT_FDCWD, out, out_data, out_size, st.st_mode & 07777);
	if (r < 0) {
		log_error_errno(r, "Cannot write '%s': %m", out);
		return cli_exit_code_from_errno(r);
	}
	log_debug("Signed '%s' with %s, signer '%s', key %s.", out, hash,
		  sign_key_signer(key), sign_key_id(key));
	return EXIT_OK;
}

static void json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *c = (const unsigned char *) strempty(s); *c; c++) {
		if (*c == '"' || *c == '\\')
			printf("\\%c", *c);
		else if (*c < 0x20)
			printf("\\u%04x", *c);
		else
			putchar(*c);
	}
	putchar('"');
}

/* The certificate dm2 signs with, without generating anything: Certificate=, else Key= (a
 * store that holds both), else dm2's own. */
static int default_cert(struct cli *cli, char **ret)
{
	struct dm2_context *ctx;
	const char *v;
	char *p;
	int r;

	r = cli_context(cli, &ctx);
	if (r < 0)
		return r;
	v = ctx->config ? (ctx->config->sign_cert ?: ctx->config->sign_key) : NULL;
	if (!isempty(v) && sign_key_is_uri(v))
		p = strdup(v);
	else if (!isempty(v)) {
		while (*v == '/')
			v++;
		p = context_path(ctx, v);
	} else
		p = context_path(ctx, DM2_CERT_FILE);
	if (!p)
		return log_oom();
	*ret = p;
	return 0;
}

int verb_verify(int argc, char *argv[], struct cli *cli)
{
	static const struct option options[] = {{"cert", required_argument, NULL, 'C'},
						{"help", no_argument, NULL, 'h'},
						{}};
	_cleanup_(module_signature_info_done) struct module_signature_info info = {};
	_cleanup_free_ char *cert = NULL, *data = NULL;
	enum kbw_compression comp;
	const char *path;
	size_t size;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
		switch (c) {
		case 'C':
			free(cert);
			cert = strdup(optarg);
			if (!cert)
				return log_oom();
			break;
		case 'h':
			printf("Usage: dm2 verify FILE.ko[.xz|.zst|.gz] [--cert CERT]\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	if (argc - optind != 1) {
		log_error("Usage: dm2 verify FILE.ko [--cert CERT]");
		return EXIT_USAGE;
	}
	path = argv[optind];

	if (!cert) {
		r = default_cert(cli, &cert);
		if (r < 0)
			return cli_exit_code_from_errno(r);
		if (!sign_key_is_uri(cert) && access(cert, R_OK) < 0) {
			log_error_errno(
				errno,
				"Cannot read dm2's certificate '%s' (use --cert): %m",
				cert);
			return EXIT_NOT_FOUND;
		}
	}

	r = read_module(path, true, &data, &size, &comp);
	if (r == -EBADMSG) {
		log_error("'%s': cannot decompress, corrupt %s data.", path,
			  kbw_compression_to_string(compression_from_filename(path)));
		return EXIT_BAD_SIGNATURE;
	}
	if (r < 0) {
		log_error_errno(r, "Cannot read module '%s': %m", path);
		return cli_exit_code_from_errno(r);
	}

	r = module_verify(data, size, cert, &info);
	switch (r) {
	case 0:
		break;
	case -ENODATA:
		log_error("'%s' is not signed.", path);
		return EXIT_BAD_SIGNATURE;
	case -EBADMSG:
		log_error("'%s': malformed or truncated signature.", path);
		return EXIT_BAD_SIGNATURE;
	case -EKEYREJECTED:
		log_error("'%s': BAD signature: the module was changed or signed by "
			  "another key "
			  "than '%s'.",
			  path, cert);
		return EXIT_BAD_SIGNATURE;
	default:
		log_error_errno(r, "Cannot verify '%s' with certificate '%s': %m", path,
				cert);
		return r == -ENOENT ? EXIT_NOT_FOUND : EXIT_BAD_SIGNATURE;
	}

	if (cli->json) {
		printf("{\"file\":");
		json_string(path);
		printf(",\"signer\":");
		json_string(info.signer);
		printf(",\"sig_key\":");
		json_string(info.key_id);
		printf(",\"sig_hashalgo\":");
		json_string(info.hash);
		printf(",\"certificate\":");
		json_string(cert);
		printf(",\"valid\":true}\n");
	} else
		printf("file:         %s\n"
		       "signer:       %s\n"
		       "sig_key:      %s\n"
		       "sig_hashalgo: %s\n"
		       "signature:    good (certificate %s)\n",
		       path, info.signer, info.key_id, info.hash, cert);
	return EXIT_OK;
}

static int key_show(struct cli *cli)
{
	_cleanup_(key_info_done) struct key_info info = {};
	_cleanup_free_ char *cert = NULL;
	int r;

	r = default_cert(cli, &cert);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	r = key_info_from_cert(cert, &info);
	if (r == -ENOENT) {
		log_error("No signing certificate at '%s'; create one with 'dm2 key "
			  "generate'.",
			  cert);
		return EXIT_NOT_FOUND;
	}
	if (r < 0) {
		log_error_errno(r, "Cannot read certificate '%s': %m", cert);
		return cli_exit_code_from_errno(r);
	}
	printf("Certificate: %s\n"
	       "Subject:     %s\n"
	       "Issuer:      %s\n"
	       "Serial:      %s\n"
	       "SHA-256:     %s\n"
	       "Not before:  %s\n"
	       "Not after:   %s\n"
	       "Key:         %s %u bits\n"
	       "\nTo use it with Secure Boot, enroll it once (and confirm in MokManager "
	       "at the "
	       "next boot):\n"
	       "mokutil --import %s\n",
	       cert, info.subject, info.issuer, info.serial, info.fingerprint,
	       info.not_before, info.not_after, info.key_type, info.bits, cert);
	return EXIT_OK;
}

int verb_key(int argc, char *argv[], struct cli *cli)
{
	static const struct option options[] = {
		{"force", no_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {}};
	struct dm2_context *ctx;
	const char *what;
	bool force = false;
	int c, r;

	while ((c = getopt_long(argc, argv, "fh", options, NULL)) >= 0)
		switch (c) {
		case 'f':
			force = true;
			break;
		case 'h':
			printf("Usage: dm2 key generate [--force] | show | adopt-dkms "
			       "[--force]\n");
			return EXIT_OK;
		default:
			return EXIT_USAGE;
		}
	if (argc - optind != 1) {
		log_error("Usage: dm2 key generate [--force] | show | adopt-dkms "
			  "[--force]");
		return EXIT_USAGE;
	}
	what = argv[optind];
	if (streq(what, "show"))
		return key_show(cli);

	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);

	if (streq(what, "generate")) {
		r = keys_generate(ctx, force);
		if (r == -EEXIST) {
			log_error("A signing key already exists in '%s/%s' (it may be "
				  "enrolled); use "
				  "--force to replace it.",
				  ctx->root, DM2_KEY_DIR);
			return EXIT_FAILURE_GENERIC;
		}
		if (r < 0) {
			log_error_errno(r, "Cannot generate a signing key in '%s/%s': %m",
					ctx->root, DM2_KEY_DIR);
			return cli_exit_code_from_errno(r);
		}
		return key_show(cli);
	}

	if (streq(what, "adopt-dkms")) {
		if (force) {
			r = rm_rf_at(ctx->root_fd, DM2_CERT_FILE);
			if (r >= 0)
				r = rm_rf_at(ctx->root_fd, DM2_KEY_FILE);
			if (r < 0) {
				log_error_errno(
					r, "Cannot remove the old key in '%s/%s': %m",
					ctx->root, DM2_KEY_DIR);
				return cli_exit_code_from_errno(r);
			}
		}
		r = keys_adopt_dkms(ctx);
		switch (r) {
		case 0:
			log_info("Adopted DKMS' key '%s/%s'.", ctx->root,
				 DM2_DKMS_KEY_FILE);
			return key_show(cli);
		case -ENOENT:
			log_error("No DKMS key: '%s/%s' and '%s/%s' must both exist.",
				  ctx->root, DM2_DKMS_KEY_FILE, ctx->root,
				  DM2_DKMS_CERT_FILE);
			return EXIT_NOT_FOUND;
		case -EKEYREJECTED:
			log_error("'%s/%s' is not the key of certificate '%s/%s'.",
				  ctx->root, DM2_DKMS_KEY_FILE, ctx->root,
				  DM2_DKMS_CERT_FILE);
			return EXIT_BAD_INPUT;
		case -EEXIST:
			log_error("dm2 already has a different key in '%s/%s'; use "
				  "--force to "
				  "replace it.",
				  ctx->root, DM2_KEY_DIR);
			return EXIT_FAILURE_GENERIC;
		default:
			log_error_errno(r, "Cannot adopt DKMS' key '%s/%s': %m",
					ctx->root, DM2_DKMS_KEY_FILE);
			return cli_exit_code_from_errno(r);
		}
	}

	log_error("Unknown 'dm2 key' command '%s' (generate, show, adopt-dkms).", what);
	return EXIT_USAGE;
}
