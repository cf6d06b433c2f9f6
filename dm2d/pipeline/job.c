/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "pipeline/builder.h"
#include "cache.h"
#include "pipeline/compress.h"
#include "pipeline/dkms-takeover.h"
#include "control/exit-codes.h"
#include "pipeline/install.h"
#include "pipeline/job.h"
#include "core/kernels.h"
#include "pipeline/keys.h"
#include "core/lock.h"
#include "pipeline/plan.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/util.h"
#include "pipeline/sign.h"
#include "pipeline/source.h"

#define JOB_MAX_NEEDS_DEPTH 8
#define CACHE_OPEN_TIMEOUT_USEC (30 * 1000000ULL)

void job_result_done(struct job_result *r)
{
	if (!r)
		return;
	free(r->version);
	free(r->stage);
	free(r->reason);
	free(r->log_path);
	free(r->signer);
	*r = (struct job_result){};
}

static char **strv_dup(char *const *l)
{
	char **c = calloc(strv_length(l) + 1, sizeof(char *));

	if (!c)
		return NULL;
	for (size_t i = 0; l && l[i]; i++) {
		c[i] = strdup(l[i]);
		if (!c[i])
			return strv_free(c);
	}
	return c;
}

static void kbw_kernel_unrefp(struct kbw_kernel **k)
{
	kbw_kernel_unref(*k);
}

static void kbw_build_result_freep(struct kbw_build_result **r)
{
	kbw_build_result_free(*r);
}

static void cache_closep(struct cache **c)
{
	cache_close(*c);
}

static void cache_entry_freep(struct cache_entry **e)
{
	cache_entry_free(*e);
}

/* SIGTERM (dm2d stopping, systemd) and SIGINT (Ctrl-C) during a build: kbuild runs in its
 * own session, so the signal never reaches it; kill its whole process group, let the job
 * record the interruption and the caller re-raise the signal (job_interrupted()). Outside
 * a build the signal keeps its default action, as before. */
static volatile sig_atomic_t in_build, interrupted;

static void on_stop_signal(int sig)
{
	if (!in_build) {
		(void) signal(sig, SIG_DFL);
		(void) raise(sig);
		return;
	}
	interrupted = sig;
	kbw_build_cancel_all();
}

static void install_stop_handlers(void)
{
	static bool done;
	static const int sigs[] = {SIGTERM, SIGINT};

	if (done)
		return;
	done = true;
	for (size_t i = 0; i < ELEMENTSOF(sigs); i++) {
		struct sigaction old, sa = {.sa_handler = on_stop_signal,
					    .sa_flags = SA_RESTART};

		/* A signal the caller ignores (nohup, background jobs) stays ignored. */
		if (sigaction(sigs[i], NULL, &old) < 0 || old.sa_handler == SIG_IGN)
			continue;
		sigemptyset(&sa.sa_mask);
		(void) sigaction(sigs[i], &sa, NULL);
	}
}

int job_interrupted(void)
{
	return interrupted;
}

/* Everything one run needs, so each stage is a small function. */
struct job_run {
	struct dm2_context *ctx;
	struct db *db;
	const struct job_options *o;
	const struct recipe *recipe;
	const struct recipe_set *set;
	struct kbw_kernel *kernel;
	const char *kver;
	int64_t id;
	const char *version;
	char *log_path; /* absolute */
	char *work;	/* root-relative private work dir */
	char *signer;
	bool from_cache;
	struct job_result *res;
	unsigned depth;
};

/* State changes are greppable events for the journal (the daemon's children); on a
 * terminal the progress lines say the same, so the events only show with -v there. */
static int event_level(void)
{
	static int level = -1;

	if (level < 0)
		level = isatty(STDERR_FILENO) ? LOG_DEBUG : LOG_INFO;
	return level;
}

static void progress(struct job_run *j, const char *what)
{
	if (!j->o->progress)
		return;
	printf("%s %s for %s: %s\n", j->recipe->name, strna(j->version), j->kver, what);
	fflush(stdout);
}

static int set_state(struct job_run *j, enum job_state st)
{
	int r;

	log_full(event_level(),
		 "event: job-state, job=%" PRIi64 ", recipe=%s, kernel=%s, state=%s",
		 j->id, j->recipe->name, j->kver, job_state_to_string(st));
	if (st != JOB_STATE_QUEUED && !job_state_is_final(st)) {
		_cleanup_free_ char *s = strjoin(job_state_to_string(st), "...");
		if (s)
			progress(j, s);
	}
	r = db_job_set_state(j->db, j->id, st, NULL, NULL, NULL);
	if (r < 0)
		return log_error_errno(r, "Failed to record state of job %" PRIi64 ": %m",
				       j->id);
	return 0;
}

/* Record a final outcome other than installed. Always returns 0: the outcome is the
 * result. */
static int finish(struct job_run *j, enum job_state st, const char *stage, int exit_code,
		  const char *reason, const char *log_path)
{
	struct job_result *res = j->res;
	int r;

	res->state = st;
	res->exit_code = exit_code;
	if (free_and_strdup(&res->stage, stage) < 0 ||
	    free_and_strdup(&res->reason, reason) < 0 ||
	    free_and_strdup(&res->log_path, log_path) < 0)
		return log_oom();

	r = db_job_set_state(j->db, j->id, st, stage, reason, log_path);
	if (r < 0)
		return log_error_errno(r, "Failed to record state of job %" PRIi64 ": %m",
				       j->id);

	log_full(event_level(),
		 "event: job-state, job=%" PRIi64 ", recipe=%s, kernel=%s, state=%s%s%s",
		 j->id, j->recipe->name, j->kver, job_state_to_string(st),
		 stage ? ", stage=" : "", strempty(stage));
	if (st == JOB_STATE_FAILED)
		log_error("%s %s for %s: failed at %s: %s%s%s", j->recipe->name,
			  strna(j->version), j->kver, stage, strna(reason),
			  log_path ? " (see " : "", log_path ? "dm2 log)" : "");
	else if (j->o->progress) {
		_cleanup_free_ char *s =
			strjoin(job_state_to_string(st), ": ", strna(reason));
		if (s)
			progress(j, s);
	}
	return 0;
}

static int fail(struct job_run *j, const char *stage, int exit_code, const char *reason)
{
	return finish(j, JOB_STATE_FAILED, stage, exit_code, reason, NULL);
}

/* Canonical text of everything in the recipe that changes the build output (patches are
 * part of the source id already). */
static char *build_rules_text(const struct recipe *r)
{
	_cleanup_free_ char *vars = strv_join(r->make_vars, "\n");
	_cleanup_free_ char *mods = NULL;

	for (size_t i = 0; i < r->n_modules; i++) {
		char *n = strjoin(strempty(mods), r->modules[i].name, "@",
				  strempty(r->modules[i].built_location),
				  r->modules[i].strip ? ",strip\n" : "\n");
		if (!n)
			return NULL;
		free(mods);
		mods = n;
	}
	return strjoin("subdir=", strempty(r->subdir), "\nmodules=", strempty(mods),
		       "make_vars=", strempty(vars),
		       "\ncommand=", strempty(r->make_command),
		       "\ncontent=", strempty(r->content_hash), "\n");
}

static const struct recipe_module *find_module(const struct recipe *r, const char *file)
{
	_cleanup_free_ char *base = strdup(file);
	char *dot;

	if (!base)
		return NULL;
	dot = endswith(base, ".ko");
	if (dot)
		*dot = '\0';
	for (size_t i = 0; i < r->n_modules; i++)
		if (streq(r->modules[i].name, base))
			return &r->modules[i];
	return NULL;
}

static int open_cache(struct dm2_context *ctx, struct cache **ret)
{
	_cleanup_free_ char *dir = context_path(ctx, DM2_ARTIFACT_DIR);
	_cleanup_free_ char *index = NULL;

	if (!dir)
		return -ENOMEM;
	index = path_join(dir, "index.db");
	if (!index)
		return -ENOMEM;
	/* Two jobs starting together on a fresh cache: SQLite refuses the second one's switch
	 * of the new index to WAL with SQLITE_BUSY at once (no busy handler runs for it), so
	 * cache_open() fails with -EBUSY although waiting a moment is all it takes. */
	for (uint64_t deadline = now_mono_usec() + CACHE_OPEN_TIMEOUT_USEC;;) {
		int r = cache_open(dir, index, ret);

		if (r != -EBUSY || now_mono_usec() >= deadline)
			return r;
		(void) usleep(10000 + (unsigned) (now_mono_usec() % 20000));
	}
}

static int run_job(struct dm2_context *ctx, struct db *d, const struct recipe_set *set,
		   const char *recipe, const char *kver, const struct job_options *o,
		   unsigned depth, struct job_result *ret);

/* Needs=: make sure each needed recipe is installed for this kernel and collect its
 * Module.symvers from the cache entry of its installed build. */
static int collect_needs(struct job_run *j, struct cache *c, char ***ret_symvers)
{
	_cleanup_strv_free_ char **symvers = NULL;
	int r;

	STRV_FOREACH(n, j->recipe->needs)
	{
		_cleanup_(cache_entry_freep) struct cache_entry *e = NULL;
		struct db_job cur = {};

		r = db_job_last_installed(j->db, *n, j->kver, &cur);
		if (r == -ENOENT ||
		    (r >= 0 &&
		     (!cur.build_key || cache_lookup(c, cur.build_key, &e) < 0))) {
			struct job_result sub = {};

			db_job_done(&cur);
			if (j->depth >= JOB_MAX_NEEDS_DEPTH) {
				_cleanup_free_ char *m =
					strjoin("Needs= chain too deep at '", *n, "'");
				return fail(j, "fetching", EXIT_BAD_INPUT, strna(m));
			}
			r = run_job(j->ctx, j->db, j->set, *n, j->kver, j->o,
				    j->depth + 1, &sub);
			if (r >= 0 && sub.state != JOB_STATE_INSTALLED)
				r = -ENOPKG;
			job_result_done(&sub);
			if (r < 0) {
				_cleanup_free_ char *m =
					strjoin("needed recipe '", *n,
						"' could not be installed");
				return fail(j, "building", EXIT_BUILD_FAILED, strna(m));
			}
			r = db_job_last_installed(j->db, *n, j->kver, &cur);
		}
		if (r < 0)
			return log_error_errno(r, "Failed to read state of '%s': %m", *n);
		if (!e && cur.build_key)
			(void) cache_lookup(c, cur.build_key, &e);
		db_job_done(&cur);
		if (e && e->symvers) {
			r = strv_extend(&symvers, e->symvers);
			if (r < 0)
				return log_oom();
		}
	}
	*ret_symvers = TAKE_PTR(symvers);
	return 0;
}

struct built {
	char **paths; /* unsigned .ko files (cache store or work dir) */
	char **names; /* "foo.ko" */
};

static void built_done(struct built *b)
{
	strv_free(b->paths);
	strv_free(b->names);
}

/* Strip= (DKMS STRIP[]): `strip -g` (llvm-strip for clang-built kernels) on a private
 * copy of the module, before it is signed: stripping a signed module would break the
 * signature, and the copy in the build cache stays as built. The tool runs with a clean
 * environment. On success the buffer and its size are replaced; on failure *ret_reason
 * says why. */
static int strip_module(struct job_run *j, const char *name, char **buf, size_t *size,
			char **ret_reason)
{
	static const char *const envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C",
					   NULL};
	const char *tool = kbw_kernel_llvm(j->kernel) ? "llvm-strip" : "strip";
	_cleanup_free_ char *rel = NULL, *abs = NULL, *out = NULL;
	size_t out_size;
	int status, r;
	pid_t pid;

	rel = strjoin(j->work, "/strip-", name);
	if (!rel)
		return -ENOMEM;
	abs = context_path(j->ctx, rel);
	if (!abs)
		return -ENOMEM;
	r = write_file_atomic_at(j->ctx->root_fd, rel, *buf, *size, 0644);
	if (r < 0)
		return r;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		int log = open(j->log_path, O_WRONLY | O_APPEND | O_CLOEXEC);

		if (null >= 0) {
			(void) dup2(null, STDIN_FILENO);
			(void) dup2(null, STDOUT_FILENO);
		}
		(void) dup2(log >= 0 ? log : null, STDERR_FILENO);
		execvpe(tool, (char *const[]){(char *) tool, (char *) "-g", abs, NULL},
			(char *const *) envp);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
			*ret_reason = strjoin("'", tool, "' not found (install ",
					      streq(tool, "strip") ? "binutils" : "llvm",
					      ") or set Strip=no");
		else if (asprintf(ret_reason, "'%s -g %s' failed (%s %d)", tool, name,
				  WIFEXITED(status) ? "exit status" : "signal",
				  WIFEXITED(status) ? WEXITSTATUS(status)
						    : WTERMSIG(status)) < 0)
			*ret_reason = NULL;
		(void) unlinkat(j->ctx->root_fd, rel, 0);
		return -EPROTO;
	}
	r = read_full_file_at(j->ctx->root_fd, rel, 0, &out, &out_size);
	(void) unlinkat(j->ctx->root_fd, rel, 0);
	if (r < 0)
		return r;
	free(*buf);
	*buf = TAKE_PTR(out);
	*size = out_size;
	return 0;
}

/* Sign, compress, install (under the kernel lock), depmod. */
static int sign_and_install(struct job_run *j, const struct built *b)
{
	_cleanup_(sign_key_freep) struct sign_key *key = NULL;
	_cleanup_free_ char *key_path = NULL, *cert_path = NULL, *conflict = NULL;
	_cleanup_free_ char *depmod_reason = NULL;
	_cleanup_close_ int lock_fd = -EBADF;
	const struct dm2_config *cfg = j->ctx->config;
	enum kbw_compression comp = kbw_kernel_compression(j->kernel);
	size_t n = strv_length(b->paths);
	struct install_item *items = NULL;
	void **bufs = NULL;
	size_t *sizes = NULL;
	char **names = NULL;
	const char *hash;
	int r, ret = 0;

	items = calloc(n + 1, sizeof(*items));
	bufs = calloc(n + 1, sizeof(*bufs));
	sizes = calloc(n + 1, sizeof(*sizes));
	names = calloc(n + 1, sizeof(*names));
	if (!items || !bufs || !sizes || !names) {
		ret = log_oom();
		goto finish;
	}

	if (cfg->sign) {
		r = set_state(j, JOB_STATE_SIGNING);
		if (r < 0) {
			ret = r;
			goto finish;
		}
		r = keys_ensure(j->ctx, &key_path, &cert_path);
		if (r >= 0)
			r = sign_key_load(key_path, cert_path, &key);
		if (r < 0) {
			_cleanup_free_ char *m = NULL;
			errno = -r;
			if (asprintf(&m, "cannot load the signing key '%s': %m",
				     strna(key_path)) < 0)
				m = NULL;
			ret = fail(j, "signing", EXIT_SIGN_FAILED, strna(m));
			goto finish;
		}
		if (free_and_strdup(&j->signer, sign_key_signer(key)) < 0) {
			ret = log_oom();
			goto finish;
		}
	}
	hash = cfg->sign_hash ?: kbw_kernel_sig_hash(j->kernel) ?: "sha256";

	for (size_t i = 0; i < n; i++) {
		const struct recipe_module *m = find_module(j->recipe, b->names[i]);
		_cleanup_free_ char *raw = NULL;
		void *signed_buf = NULL, *out = NULL;
		size_t raw_size, signed_size, out_size;
		const char *dest_name;

		r = read_full_file_at(AT_FDCWD, b->paths[i], 0, &raw, &raw_size);
		if (r < 0) {
			_cleanup_free_ char *msg =
				strjoin("cannot read built module '", b->paths[i], "'");
			ret = fail(j, "signing", EXIT_SIGN_FAILED, strna(msg));
			goto finish;
		}
		/* A built module the recipe does not list keeps the default, Strip=yes. */
		if (!m || m->strip) {
			_cleanup_free_ char *why = NULL;

			r = strip_module(j, b->names[i], &raw, &raw_size, &why);
			if (r < 0) {
				_cleanup_free_ char *msg = NULL;

				if (!why) {
					errno = -r;
					if (asprintf(&msg, "stripping '%s' failed: %m",
						     b->names[i]) < 0)
						msg = NULL;
				}
				ret = finish(j, JOB_STATE_FAILED, "building",
					     EXIT_BUILD_FAILED, why ?: strna(msg),
					     j->from_cache ? NULL : j->log_path);
				goto finish;
			}
		}
		if (key) {
			r = module_sign(key, hash, raw, raw_size, &signed_buf,
					&signed_size);
			if (r < 0) {
				_cleanup_free_ char *msg = NULL;
				errno = -r;
				if (asprintf(&msg, "signing '%s' with %s failed: %m",
					     b->names[i], hash) < 0)
					msg = NULL;
				ret = fail(j, "signing", EXIT_SIGN_FAILED, strna(msg));
				goto finish;
			}
		} else {
			signed_buf = TAKE_PTR(raw);
			signed_size = raw_size;
		}
		if (comp != KBW_COMPRESSION_NONE) {
			r = module_compress(comp, signed_buf, signed_size, &out,
					    &out_size);
			free(signed_buf);
			if (r < 0) {
				_cleanup_free_ char *msg =
					strjoin("compressing '", b->names[i], "' failed");
				ret = fail(j, "installing", EXIT_INSTALL_FAILED,
					   strna(msg));
				goto finish;
			}
		} else {
			out = signed_buf;
			out_size = signed_size;
		}
		bufs[i] = out;
		sizes[i] = out_size;

		dest_name = m && m->dest_name ? m->dest_name : (m ? m->name : NULL);
		if (dest_name)
			names[i] =
				strjoin(dest_name, ".ko", kbw_compression_suffix(comp));
		else
			names[i] = strjoin(b->names[i], kbw_compression_suffix(comp));
		if (!names[i]) {
			ret = log_oom();
			goto finish;
		}
		items[i] = (struct install_item){
			.dir = m && m->dest_dir
				       ? m->dest_dir
				       : (j->recipe->install_dir ?: "updates/dm2"),
			.name = names[i],
			.data = bufs[i],
			.size = sizes[i],
		};
	}

	r = set_state(j, JOB_STATE_INSTALLING);
	if (r < 0) {
		ret = r;
		goto finish;
	}
	r = lock_kernel(j->ctx, j->kver, lock_timeout_usec(LOCK_KERNEL_TIMEOUT_USEC),
			&lock_fd);
	if (r < 0) {
		ret = fail(j, "installing", EXIT_BUSY,
			   r == -EBUSY ? "timed out waiting for the kernel lock"
				       : "cannot take the kernel lock");
		goto finish;
	}
	r = install_files(j->ctx, j->db, j->recipe->name, j->kver, items, n, &conflict);
	if (r < 0) {
		_cleanup_free_ char *msg = NULL;
		_cleanup_free_ char *dkms_pkg = NULL;

		if (r == -EEXIST && conflict &&
		    dkms_file_owner(j->ctx, conflict, &dkms_pkg) >= 0)
			msg = strjoin("'", conflict, "' was installed by DKMS (package '",
				      dkms_pkg, "'); see 'dm2 dkms takeover'");
		else if (r == -EEXIST)
			msg = strjoin("'", strna(conflict),
				      "' exists and was not installed by dm2");
		else {
			errno = -r;
			if (asprintf(&msg, "writing the module failed: %m") < 0)
				msg = NULL;
		}
		ret = fail(j, "installing", EXIT_INSTALL_FAILED, strna(msg));
		goto finish;
	}
	if (!j->o->no_depmod) {
		r = install_depmod(j->ctx, j->kver, &depmod_reason);
		if (r < 0) {
			_cleanup_free_ char *msg =
				strjoin("depmod failed: ", strna(depmod_reason));
			ret = fail(j, "installing", EXIT_INSTALL_FAILED, strna(msg));
			goto finish;
		}
	}
	r = db_job_set_build(j->db, j->id, NULL, NULL, j->from_cache, j->signer);
	if (r >= 0)
		r = db_job_set_state(j->db, j->id, JOB_STATE_INSTALLED, NULL, NULL, NULL);
	if (r < 0) {
		ret = log_error_errno(r, "Failed to record job %" PRIi64 ": %m", j->id);
		goto finish;
	}
	log_full(event_level(),
		 "event: job-state, job=%" PRIi64
		 ", recipe=%s, kernel=%s, state=installed",
		 j->id, j->recipe->name, j->kver);
	j->res->state = JOB_STATE_INSTALLED;
	j->res->exit_code = EXIT_OK;
	if (j->o->progress) {
		_cleanup_free_ char *s =
			strjoin("installed (", j->from_cache ? "from cache" : "built",
				j->signer ? ", signed by '" : ", unsigned",
				strempty(j->signer), j->signer ? "')" : ")");
		if (s)
			progress(j, s);
	}
finish:
	for (size_t i = 0; bufs && i < n; i++)
		free(bufs[i]);
	for (size_t i = 0; names && i < n; i++)
		free(names[i]);
	free(bufs);
	free(sizes);
	free(names);
	free(items);
	return ret;
}

/* From prepared sources to a signed module installed. */
static int pipeline(struct job_run *j, const struct recipe_source *src)
{
	_cleanup_(cache_closep) struct cache *cache = NULL;
	_cleanup_(cache_entry_freep) struct cache_entry *entry = NULL;
	_cleanup_(kbw_build_result_freep) struct kbw_build_result *br = NULL;
	_cleanup_free_ char *src_rel = NULL, *src_abs = NULL, *build_abs = NULL;
	_cleanup_free_ char *content_id = NULL, *reason = NULL, *rules = NULL;
	_cleanup_free_ char *log_dir = NULL;
	_cleanup_strv_free_ char **needs = NULL;
	struct built b = {};
	char key[CACHE_KEY_SIZE];
	int r;

	r = set_state(j, JOB_STATE_FETCHING);
	if (r < 0)
		return r;
	src_rel = strjoin(j->work, "/src");
	if (!src_rel)
		return log_oom();
	src_abs = context_path(j->ctx, src_rel);
	build_abs = strjoin(strempty(src_abs), "-build");
	if (!src_abs || !build_abs)
		return log_oom();
	r = source_prepare(j->ctx, j->recipe, src, j->kver, src_abs, &content_id,
			   &reason);
	if (r < 0)
		return fail(j, "fetching", source_error_to_exit_code(r),
			    reason ?: "preparing the sources failed");

	rules = build_rules_text(j->recipe);
	if (!rules)
		return log_oom();
	r = cache_key_compute(
		&(struct cache_key_input){
			.recipe_name = j->recipe->name,
			.source_id = content_id,
			.build_rules = rules,
			.kernel_identity = kbw_kernel_identity(j->kernel),
			.arch = kbw_kernel_arch(j->kernel),
			.format_version = CACHE_FORMAT_VERSION,
		},
		key);
	if (r < 0)
		return fail(j, "building", EXIT_FAILURE_GENERIC,
			    "cannot compute the build key");
	r = db_job_set_build(j->db, j->id, NULL, key, false, NULL);
	if (r < 0)
		return log_error_errno(r, "Failed to record job %" PRIi64 ": %m", j->id);

	r = open_cache(j->ctx, &cache);
	if (r < 0)
		return log_error_errno(r, "Failed to open the build cache: %m");

	if (!j->o->force) {
		r = cache_lookup(cache, key, &entry);
		if (r == -ENOENT && j->ctx->config->remote_cache) {
			_cleanup_free_ char *why = NULL;
			const struct dm2_config *cfg = j->ctx->config;
			struct cache_remote_options ro = {
				.ca_file = cfg->ca_file,
				.connect_timeout_usec = cfg->connect_timeout_usec,
				.stall_timeout_usec = cfg->stall_timeout_usec,
			};

			r = cache_remote_pull(cache, cfg->remote_cache, key, &ro, &why);
			if (r >= 0)
				r = cache_lookup(cache, key, &entry);
			else if (r != -ENOENT)
				log_warning("Remote cache: %s, ignoring.", strna(why));
		}
		if (r < 0 && r != -ENOENT)
			log_warning_errno(r, "Cache lookup of '%s' failed, building: %m",
					  key);
	}

	if (entry) {
		j->from_cache = true;
		b.paths = strv_dup(entry->files);
		b.names = strv_dup(entry->names);
		if (!b.paths || !b.names) {
			built_done(&b);
			return log_oom();
		}
		progress(j, "found in the build cache");
	} else {
		r = collect_needs(j, cache, &needs);
		if (r != 0 || j->res->state == JOB_STATE_FAILED)
			return r;

		r = set_state(j, JOB_STATE_BUILDING);
		if (r < 0)
			return r;
		log_dir = strjoin(DM2_LOG_DIR "/", j->recipe->name, "/", j->kver);
		if (!log_dir)
			return log_oom();
		r = mkdir_p_at(j->ctx->root_fd, log_dir, 0755);
		if (r < 0)
			return log_error_errno(r, "Failed to create '%s': %m", log_dir);
		in_build = 1;
		r = builder_build(j->ctx, j->recipe, j->kernel, src_abs, build_abs,
				  j->log_path, needs, &br);
		in_build = 0;
		if (interrupted) {
			_cleanup_free_ char *m = NULL;

			if (asprintf(&m, "interrupted by signal %s",
				     sigabbrev_np(interrupted) ?: "?") < 0)
				m = NULL;
			return finish(j, JOB_STATE_FAILED, "building", EXIT_BUILD_FAILED,
				      strna(m), j->log_path);
		}
		if (r < 0) {
			_cleanup_free_ char *m = NULL;
			errno = -r;
			if (asprintf(&m, "cannot run the build: %m") < 0)
				m = NULL;
			return finish(j, JOB_STATE_FAILED, "building", EXIT_BUILD_FAILED,
				      strna(m), j->log_path);
		}
		if (!kbw_build_succeeded(br)) {
			_cleanup_free_ char *prefix = strjoin(build_abs, "/");
			const char *why = br->reason ?: "the build failed", *p;

			/* "ROOT/var/lib/dm2/work/job-XXXXXX/src-build/foo.c:3: error" is
			 * gone by the time anyone reads it: say "foo.c:3: error". */
			if (prefix && (p = strstr(why, prefix))) {
				_cleanup_free_ char *t = strndup(why, p - why);
				_cleanup_free_ char *m =
					t ? strjoin(t, p + strlen(prefix)) : NULL;

				if (m)
					return finish(j, JOB_STATE_FAILED, "building",
						      EXIT_BUILD_FAILED, m, j->log_path);
			}
			return finish(j, JOB_STATE_FAILED, "building", EXIT_BUILD_FAILED,
				      why, j->log_path);
		}

		b.paths = strv_dup(br->modules);
		if (!b.paths)
			return log_oom();
		STRV_FOREACH(p, br->modules)
		{
			const char *s = strrchr(*p, '/');
			if (strv_extend(&b.names, s ? s + 1 : *p) < 0) {
				built_done(&b);
				return log_oom();
			}
		}
		r = cache_store(cache, key, br->modules, b.names, br->symvers);
		if (r < 0)
			log_warning_errno(
				r,
				"Failed to store '%s' in the build cache, ignoring: %m",
				key);
		else if (j->ctx->config->remote_cache && j->ctx->config->remote_push) {
			_cleanup_free_ char *why = NULL;
			const struct dm2_config *cfg = j->ctx->config;
			struct cache_remote_options ro = {
				.ca_file = cfg->ca_file,
				.connect_timeout_usec = cfg->connect_timeout_usec,
				.stall_timeout_usec = cfg->stall_timeout_usec,
			};

			if (cache_remote_push(cache, cfg->remote_cache, key, &ro, &why) <
			    0)
				log_warning("Pushing '%s' to the remote cache failed: "
					    "%s, ignoring.",
					    key, strna(why));
		}
	}

	r = db_job_set_build(j->db, j->id, NULL, NULL, j->from_cache, NULL);
	if (r >= 0 && !j->from_cache)
		r = db_job_set_state(j->db, j->id, JOB_STATE_BUILDING, NULL, NULL,
				     j->log_path);
	if (r < 0) {
		built_done(&b);
		return log_error_errno(r, "Failed to record job %" PRIi64 ": %m", j->id);
	}
	r = sign_and_install(j, &b);
	built_done(&b);
	return r;
}

/* A job somebody queued (the daemon) for a recipe or kernel that no longer exists must
 * not stay queued forever: it would be resumed again after every restart. */
static void abandon_queued(struct db *d, const char *recipe, const char *kver,
			   const char *reason)
{
	struct db_job cur = {};

	if (db_job_current(d, recipe, kver, &cur) < 0)
		return;
	if (!job_state_is_final(cur.state))
		(void) db_job_set_state(d, cur.id, JOB_STATE_FAILED,
					job_state_to_string(cur.state), reason, NULL);
	db_job_done(&cur);
}

static int run_job(struct dm2_context *ctx, struct db *d, const struct recipe_set *set,
		   const char *recipe, const char *kver, const struct job_options *o,
		   unsigned depth, struct job_result *ret)
{
	_cleanup_(kbw_kernel_unrefp) struct kbw_kernel *k = NULL;
	_cleanup_close_ int job_lock = -EBADF;
	_cleanup_free_ char *jobid = NULL, *log_rel = NULL, *work_name = NULL;
	struct job_result res = {};
	struct plan plan = {};
	const struct recipe *rcp;
	const char *why = NULL, *content_hash;
	bool complete;
	int r;

	rcp = recipe_set_find(set, recipe);
	if (!rcp) {
		abandon_queued(d, recipe, kver, "no such recipe");
		return log_error_errno(ENOENT, "No recipe '%s'; see 'dm2 recipe list'.",
				       recipe);
	}

	r = kernel_find(ctx, kver, &k);
	if (r == -ENOENT || r == -EINVAL) {
		abandon_queued(d, recipe, kver, "no such kernel");
		return log_error_errno(ENOENT, "No kernel '%s' in '%s/lib/modules'.",
				       kver, strcmp(ctx->root, "/") ? ctx->root : "");
	}
	if (r < 0)
		return log_error_errno(r, "Failed to probe kernel '%s': %m", kver);

	/* A dkms.conf is evaluated for this kernel ($kernelver, MAKE_MATCH, PATCH_MATCH).
	 */
	_cleanup_(recipe_unrefp) struct recipe *for_kernel = NULL;
	r = recipe_for_kernel(ctx, rcp, k, NULL, NULL, &for_kernel);
	if (r < 0)
		return log_error_errno(r, "Failed to evaluate '%s' for kernel '%s': %m",
				       rcp->path, kver);
	r = recipe_content_hash(for_kernel, &content_hash);
	if (r == -ESTALE)
		return log_error_errno(r, "Recipe '%s' changed while it was read; run again.",
				       for_kernel->path);
	if (r < 0)
		return log_error_errno(r, "Failed to read recipe '%s': %m", for_kernel->path);
	rcp = for_kernel;
	complete = kbw_kernel_complete(k, &why);

	/* The stamp dm2d compares, not the sha256 identity (see kernel_tree_stamp()). */
	_cleanup_free_ char *stamp = NULL;
	if (complete && kernel_tree_stamp(k, &stamp) < 0)
		stamp = NULL;
	r = db_kernel_upsert(d, kver, stamp, kbw_kernel_arch(k),
			     complete ? "complete" : "incomplete", complete ? NULL : why);
	if (r >= 0)
		r = db_recipe_upsert(d, rcp->name, recipe_origin_to_string(rcp->origin),
				     rcp->path, content_hash);
	if (r < 0)
		return log_error_errno(r, "Failed to write the state db: %m");

	/* One job per recipe x kernel at a time; other recipes go on in parallel. */
	r = lock_job(ctx, rcp->name, kver,
		     lock_timeout_usec(ctx->config->build_timeout_usec +
				       LOCK_KERNEL_TIMEOUT_USEC),
		     &job_lock);
	if (r < 0)
		return log_error_errno(r, "Another dm2 is working on '%s' for '%s': %m",
				       rcp->name, kver);

	struct job_run j = {
		.ctx = ctx,
		.db = d,
		.o = o,
		.recipe = rcp,
		.set = set,
		.kernel = k,
		.kver = kver,
		.res = &res,
		.depth = depth,
	};

	r = db_job_enqueue(d, rcp->name, kver, &j.id);
	if (r < 0)
		return log_error_errno(r, "Failed to queue '%s' for '%s': %m", rcp->name,
				       kver);
	res.id = j.id;
	if (asprintf(&jobid, "%" PRIi64, j.id) < 0)
		return log_oom();
	log_set_context(rcp->name, kver, jobid);

	log_rel = strjoin(DM2_LOG_DIR "/", rcp->name, "/", kver, "/build.log");
	if (!log_rel)
		return log_oom();
	j.log_path = context_path(ctx, log_rel);
	if (!j.log_path)
		return log_oom();

	if (!complete) {
		r = finish(&j, JOB_STATE_WAITING, NULL, EXIT_WAITING,
			   why ?: "incomplete build tree", NULL);
		goto done;
	}

	r = plan_recipe(rcp, k, ctx->config->allow_non_gpl, &plan);
	if (r < 0) {
		log_error_errno(r, "Failed to plan '%s' for '%s': %m", rcp->name, kver);
		goto done;
	}
	if (!plan.applicable) {
		r = finish(&j, JOB_STATE_SKIPPED, NULL, EXIT_SKIPPED,
			   plan.skip_reason ?: "not applicable", NULL);
		goto done;
	}
	j.version = plan.source->version;
	r = db_job_set_build(d, j.id, j.version, NULL, false, NULL);
	if (r < 0) {
		log_error_errno(r, "Failed to record job %" PRIi64 ": %m", j.id);
		goto done;
	}

	r = mkdir_p_at(ctx->root_fd, DM2_WORK_DIR, 0755);
	if (r >= 0)
		r = mkdtemp_at(ctx->root_fd, DM2_WORK_DIR "/job-", &work_name);
	if (r < 0) {
		log_error_errno(r, "Failed to create a work directory in '%s': %m",
				DM2_WORK_DIR);
		goto done;
	}
	j.work = work_name;
	/* The build user copies the sources from here. */
	(void) fchmodat(ctx->root_fd, j.work, 0755, 0);

	r = pipeline(&j, plan.source);

	if (!getenv("DM2_KEEP_WORK"))
		(void) rm_rf_at(ctx->root_fd, j.work);
done:
	log_set_context(NULL, NULL, NULL);
	if (r >= 0 && res.state == JOB_STATE_QUEUED) {
		/* A stage gave up without recording why (it logged it): record that. */
		(void) fail(&j, "installing", EXIT_FAILURE_GENERIC,
			    "internal error, see the log");
	}
	if (r >= 0) {
		res.from_cache = j.from_cache;
		if (free_and_strdup(&res.version, j.version) < 0 ||
		    free_and_strdup(&res.signer, j.signer) < 0)
			r = log_oom();
		if (!res.log_path && res.state == JOB_STATE_INSTALLED && !j.from_cache)
			(void) free_and_strdup(&res.log_path, j.log_path);
	}
	plan_done(&plan);
	free(j.log_path);
	free(j.signer);
	if (r < 0) {
		/* Leave no job in a running state behind. */
		(void) db_job_set_state(d, j.id, JOB_STATE_FAILED, "installing",
					"internal error, see the log", NULL);
		job_result_done(&res);
		return r;
	}
	*ret = res;
	return 0;
}

int job_run(struct dm2_context *ctx, struct db *d, const char *recipe, const char *kver,
	    const struct job_options *o, struct job_result *ret)
{
	_cleanup_(recipe_set_freep) struct recipe_set *owned = NULL;
	const struct recipe_set *set = o->recipes;
	int r;

	if (!set) {
		r = recipe_set_load(ctx, NULL, NULL, &owned);
		if (r < 0)
			return log_error_errno(r, "Failed to load recipes: %m");
		set = owned;
	}
	kernels_setup_log();
	install_stop_handlers();
	return run_job(ctx, d, set, recipe, kver, o, 0, ret);
}
