/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dm2 sign|verify|key: see dm2(1). */
#include <fcntl.h>
#include <getopt.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/secureboot.h"
#include "pipeline/compress.h"
#include "pipeline/keys.h"
#include "pipeline/sign.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"

#define MODULE_MAX_SIZE (1024U * 1024U * 1024U)

DEFINE_TRIVIAL_CLEANUP_FUNC(struct kbw_kernel *, kbw_kernel_unref);

#define SIGN_USAGE                                                                       \
	"dm2 sign FILE.ko [--key KEY --cert CERT] [--hash sha256|sha384|sha512] "        \
	"[-k KVER] [-o OUT] | dm2 sign HASH KEY CERT MODULE [DEST]"
#define VERIFY_USAGE "dm2 verify FILE.ko[.xz|.zst|.gz] [--cert CERT] [--json]"
#define KEY_USAGE                                                                        \
	"dm2 key {generate [--force] | show [--json] | status [--json] | "               \
	"adopt-dkms [--force]}"

/* --hash, else [Signing] Hash=, else the kernel's CONFIG_MODULE_SIG_HASH, else sha256.
 * Returns an exit code. */
static int pick_hash(struct cli *cli, const char *arg, const char *kver, char **ret)
{
	_cleanup_(kbw_kernel_unrefp) struct kbw_kernel *k = NULL;
	struct dm2_context *ctx = NULL;
	const char *h = arg;
	int r;

	if (!h) {
		r = cli_context(cli, &ctx);
		if (r < 0)
			return cli_exit_code_from_errno(r);
		h = ctx->config ? ctx->config->sign_hash : NULL;
	}
	if (!h && kver) {
		r = cli_find_kernel(cli, kver, &k);
		if (r != EXIT_OK)
			return r;
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
		return arg ? EXIT_USAGE : EXIT_BAD_INPUT;
	}
	*ret = strdup(h);
	return *ret ? EXIT_OK : (log_oom(), EXIT_FAILURE_GENERIC);
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

/* --key/--cert, else dm2's own key (generated on first use). Returns an exit code. */
static int load_key(struct cli *cli, const char *key_arg, const char *cert_arg,
		    struct sign_key **ret)
{
	_cleanup_free_ char *own_key = NULL, *own_cert = NULL;
	struct dm2_context *ctx;
	int r;

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
	r = sign_key_load(key_arg, cert_arg, ret);
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
	return EXIT_OK;
}

/* Sign module in into out (which may be in). Returns an exit code. */
static int sign_to(struct sign_key *key, const char *hash, const char *in,
		   const char *out, mode_t mode)
{
	_cleanup_free_ char *data = NULL;
	_cleanup_free_ void *signed_data = NULL, *out_data = NULL;
	enum kbw_compression comp;
	size_t size, signed_size, out_size;
	int r;

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
	r = write_file_atomic_at(AT_FDCWD, out, out_data, out_size, mode);
	if (r < 0) {
		log_error_errno(r, "Cannot write '%s': %m", out);
		return cli_exit_code_from_errno(r);
	}
	log_debug("Signed '%s' with %s, signer '%s', key %s.", out, hash,
		  sign_key_signer(key), sign_key_id(key));
	return EXIT_OK;
}

int verb_sign(int argc, char *argv[], struct cli *cli)
{
	static const struct option options[] = {{"key", required_argument, NULL, 'K'},
						{"cert", required_argument, NULL, 'C'},
						{"hash", required_argument, NULL, 'H'},
						{"kernel", required_argument, NULL, 'k'},
						{"output", required_argument, NULL, 'o'},
						{}};
	_cleanup_(sign_key_freep) struct sign_key *key = NULL;
	_cleanup_free_ char *hash = NULL;
	const char *key_arg = NULL, *cert_arg = NULL, *hash_arg = NULL, *kver = NULL;
	const char *in, *out = NULL;
	struct stat st;
	int c, r, ret;

	while ((c = cli_getopt(argc, argv, "k:o:", options, SIGN_USAGE, 1, 5, &ret)) >= 0)
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
		default:
			return EXIT_USAGE;
		}
	if (ret >= 0)
		return ret;

	if (argc - optind >= 4 && argc - optind <= 5 && !key_arg && !cert_arg &&
	    !hash_arg && !out) {
		/* sign-file compatibility: HASH KEY CERT MODULE [DEST] */
		hash_arg = argv[optind];
		key_arg = argv[optind + 1];
		cert_arg = argv[optind + 2];
		in = argv[optind + 3];
		out = argc - optind == 5 ? argv[optind + 4] : NULL;
	} else {
		ret = cli_check_args(argc, argv, 1, 1, SIGN_USAGE);
		if (ret != EXIT_OK)
			return ret;
		in = argv[optind];
	}
	if (!out)
		out = in;

	/* Before anything else, so that a typo does not generate a key first. */
	if (stat(in, &st) < 0) {
		log_error_errno(errno, "Cannot read '%s': %m", in);
		return cli_exit_code_from_errno(-errno);
	}
	if (!S_ISREG(st.st_mode)) {
		log_error("'%s' is not a regular file.", in);
		return EXIT_BAD_INPUT;
	}
	r = pick_hash(cli, hash_arg, kver, &hash);
	if (r != EXIT_OK)
		return r;

	r = load_key(cli, key_arg, cert_arg, &key);
	if (r != EXIT_OK)
		return r;
	return sign_to(key, hash, in, out, st.st_mode & 07777);
}

/* The certificate dm2 signs with, without generating anything: Certificate=, else Key= (a
 * store that holds both), else dm2's own. */
/* The exit code for module_verify()'s error r, logged. */
static int verify_failed(int r, const char *path, const char *cert)
{
	switch (r) {
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
}

static void print_verified(struct cli *cli, const char *path, const char *cert,
			   const struct module_signature_info *info)
{
	if (cli->json) {
		printf("{\"version\":1,\"file\":");
		cli_json_string(stdout, strempty(path));
		printf(",\"signer\":");
		cli_json_string(stdout, strempty(info->signer));
		printf(",\"sig_key\":");
		cli_json_string(stdout, strempty(info->key_id));
		printf(",\"sig_hashalgo\":");
		cli_json_string(stdout, strempty(info->hash));
		printf(",\"certificate\":");
		cli_json_string(stdout, strempty(cert));
		printf(",\"valid\":true}\n");
	} else
		printf("file:         %s\n"
		       "signer:       %s\n"
		       "sig_key:      %s\n"
		       "sig_hashalgo: %s\n"
		       "signature:    good (certificate %s)\n",
		       path, info->signer, info->key_id, info->hash, cert);
}

int verb_verify(int argc, char *argv[], struct cli *cli)
{
	static const struct option options[] = {{"cert", required_argument, NULL, 'C'},
						{}};
	_cleanup_(module_signature_info_done) struct module_signature_info info = {};
	_cleanup_free_ char *cert = NULL, *data = NULL;
	enum kbw_compression comp;
	const char *path;
	size_t size;
	int c, r, ret;

	while ((c = cli_getopt(argc, argv, "", options, VERIFY_USAGE, 1, 1, &ret)) >= 0)
		switch (c) {
		case 'C':
			free(cert);
			cert = strdup(optarg);
			if (!cert)
				return log_oom(), EXIT_FAILURE_GENERIC;
			break;
		default:
			return EXIT_USAGE;
		}
	if (ret >= 0)
		return ret;
	path = argv[optind];

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

	if (!cert) {
		r = cli_cert_path(cli, &cert);
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

	r = module_verify(data, size, cert, &info);
	if (r < 0)
		return verify_failed(r, path, cert);
	print_verified(cli, path, cert, &info);
	return EXIT_OK;
}

static void key_show_json(const char *cert, const struct key_info *info)
{
	fputs("{\"version\":1,\"certificate\":", stdout);
	cli_json_string(stdout, cert);
	fputs(",\"subject\":", stdout);
	cli_json_string(stdout, info->subject);
	fputs(",\"issuer\":", stdout);
	cli_json_string(stdout, info->issuer);
	fputs(",\"serial\":", stdout);
	cli_json_string(stdout, info->serial);
	fputs(",\"sha256\":", stdout);
	cli_json_string(stdout, info->fingerprint);
	fputs(",\"not_before\":", stdout);
	cli_json_string(stdout, info->not_before);
	fputs(",\"not_after\":", stdout);
	cli_json_string(stdout, info->not_after);
	fputs(",\"key_type\":", stdout);
	cli_json_string(stdout, info->key_type);
	printf(",\"bits\":%u}\n", info->bits);
}

static int key_show(struct cli *cli)
{
	_cleanup_(key_info_done) struct key_info info = {};
	_cleanup_free_ char *cert = NULL;
	int r;

	r = cli_cert_path(cli, &cert);
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
	if (cli->json) {
		key_show_json(cert, &info);
		return EXIT_OK;
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

static int key_generate(struct cli *cli, struct dm2_context *ctx, bool force)
{
	int r;

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

/* DKMS' key becomes dm2's (--force: in place of dm2's own). */
static int key_adopt_dkms(struct cli *cli, struct dm2_context *ctx, bool force)
{
	int r;

	if (force) {
		r = rm_rf_at(ctx->root_fd, DM2_CERT_FILE);
		if (r >= 0)
			r = rm_rf_at(ctx->root_fd, DM2_KEY_FILE);
		if (r < 0) {
			log_error_errno(r, "Cannot remove the old key in '%s/%s': %m",
					ctx->root, DM2_KEY_DIR);
			return cli_exit_code_from_errno(r);
		}
	}
	r = keys_adopt_dkms(ctx);
	switch (r) {
	case 0:
		log_info("Adopted DKMS' key '%s/%s'.", ctx->root, DM2_DKMS_KEY_FILE);
		return key_show(cli);
	case -ENOENT:
		log_error("No DKMS key: '%s/%s' and '%s/%s' must both exist.", ctx->root,
			  DM2_DKMS_KEY_FILE, ctx->root, DM2_DKMS_CERT_FILE);
		return EXIT_NOT_FOUND;
	case -EKEYREJECTED:
		log_error("'%s/%s' is not the key of certificate '%s/%s'.", ctx->root,
			  DM2_DKMS_KEY_FILE, ctx->root, DM2_DKMS_CERT_FILE);
		return EXIT_BAD_INPUT;
	case -EEXIST:
		log_error("dm2 already has a different key in '%s/%s'; use "
			  "--force to "
			  "replace it.",
			  ctx->root, DM2_KEY_DIR);
		return EXIT_FAILURE_GENERIC;
	default:
		log_error_errno(r, "Cannot adopt DKMS' key '%s/%s': %m", ctx->root,
				DM2_DKMS_KEY_FILE);
		return cli_exit_code_from_errno(r);
	}
}

/* dm2 key status: Secure Boot, and whether dm2's certificate is enrolled as a MOK. */
static int key_status(struct cli *cli)
{
	_cleanup_free_ char *cert = NULL;
	struct secureboot_state st;
	int r;

	r = cli_secureboot(cli, &st, &cert);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	if (cli->json) {
		fputs("{\"version\":1,", stdout);
		cli_secureboot_json(stdout, &st, cert);
		fputs("}\n", stdout);
		return EXIT_OK;
	}
	if (!st.efi)
		printf("Secure Boot: unknown (no EFI variables: booted without UEFI, or no "
		       "efivarfs)\n");
	else
		printf("Secure Boot: %s\n",
		       st.secure_boot > 0 ? "on" : st.secure_boot == 0 ? "off" : "unknown");
	printf("Certificate: %s\n", cert);
	switch (st.mok) {
	case MOK_ENROLLED:
		printf("Enrolled:    yes (in MokListRT)\n");
		break;
	case MOK_PENDING:
		printf("Enrolled:    pending (in MokNew): confirm it in MokManager at the next "
		       "boot\n");
		break;
	case MOK_NOT_ENROLLED:
		printf("Enrolled:    no\n\nEnroll it once (and confirm in MokManager at the next "
		       "boot):\nmokutil --import %s\n",
		       cert);
		break;
	case MOK_NO_CERTIFICATE:
		printf("Enrolled:    no certificate yet: dm2 key generate\n");
		break;
	case MOK_UNKNOWN:
	case _MOK_STATE_MAX:
	case _MOK_STATE_INVALID:
		printf("Enrolled:    unknown\n");
		break;
	}
	return EXIT_OK;
}

static const struct cli_subverb_usage key_usages[] = {
	{ "generate", "dm2 key generate [--force]" },
	{ "show", "dm2 key show [--json]" },
	{ "status", "dm2 key status [--json]" },
	{ "adopt-dkms", "dm2 key adopt-dkms [--force]" },
};

int verb_key(int argc, char *argv[], struct cli *cli)
{
	static const struct option options[] = {{"force", no_argument, NULL, 'f'}, {}};
	struct dm2_context *ctx;
	const char *what;
	bool force = false;
	int c, r, ret;

	if (cli_help_requested(argc, argv, key_usages, ELEMENTSOF(key_usages), KEY_USAGE))
		return EXIT_OK;
	while ((c = cli_getopt(argc, argv, "f", options, KEY_USAGE, 1, 1, &ret)) >= 0)
		switch (c) {
		case 'f':
			force = true;
			break;
		default:
			return EXIT_USAGE;
		}
	if (ret >= 0)
		return ret;
	what = argv[optind];
	/* Before opening the root, so a typo is reported as such. */
	if (!streq(what, "generate") && !streq(what, "show") && !streq(what, "status") &&
	    !streq(what, "adopt-dkms"))
		return cli_usage_error(KEY_USAGE, "Unknown command 'dm2 key %s'", what);
	if (streq(what, "show"))
		return key_show(cli);
	if (streq(what, "status"))
		return key_status(cli);

	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);

	if (streq(what, "generate"))
		return key_generate(cli, ctx, force);
	if (streq(what, "adopt-dkms"))
		return key_adopt_dkms(cli, ctx, force);

	return cli_usage_error(KEY_USAGE, "Unknown command 'dm2 key %s'", what);
}
