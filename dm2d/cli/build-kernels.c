/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dm2 build NAME --all-kernels and dm2 recipe test: a test build of one recipe for every
 * kernel under the root, in parallel, touching nothing installed. Each kernel's build is
 * a child process running the build-only pipeline (no state db, its own test.log); they
 * share one make jobserver pool, so together they use the CPUs one build would.
 */
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/kernels.h"
#include "pipeline/builder.h"
#include "pipeline/job.h"
#include "recipe/recipe-set.h"
#include "shared/fs-util.h"
#include "shared/jobserver.h"
#include "shared/log.h"
#include "shared/util.h"

/* What a child hands back: the fields of its job_result, NUL-terminated, in this order.
 */
enum {
	FIELD_STATE,
	FIELD_STAGE,
	FIELD_ERROR,
	FIELD_VERSION,
	FIELD_REASON,
	FIELD_LOG,
	_FIELD_MAX,
};

struct kernel_test {
	char *kver;
	pid_t pid;
	int fd; /* read end of the child's result pipe */
	char *fields[_FIELD_MAX];
	int exit_code;
};

static void kernel_test_done(struct kernel_test *t)
{
	free(t->kver);
	safe_close(t->fd);
	for (size_t i = 0; i < _FIELD_MAX; i++)
		free(t->fields[i]);
}

/* The child: one build-only job; its result to fd. Never returns. */
static _noreturn_ void run_child(struct dm2_context *ctx, const struct recipe_set *set,
				 const char *name, const char *kver, const char *version,
				 int fd)
{
	_cleanup_(job_result_done) struct job_result res = {};
	struct job_options o = {
		.build_only = true,
		.version = version,
		.recipes = set,
	};
	int r;

	r = job_run(ctx, NULL, name, kver, &o, &res);
	if (r < 0) {
		res.state = JOB_STATE_FAILED;
		res.stage = JOB_STATE_QUEUED;
		res.error = r;
		if (!res.reason)
			res.reason = strdup(strerror(-r));
	}
	dprintf(fd, "%s%c%s%c%i%c%s%c%s%c%s%c", job_state_to_string(res.state), 0,
		res.state == JOB_STATE_FAILED ? strempty(job_state_to_string(res.stage))
					      : "",
		0, res.error, 0, strempty(res.version), 0, strempty(res.reason), 0,
		strempty(res.log_path), 0);
	_exit(0);
}

/* All a child wrote, up to EOF (its results are a few lines: 64 KiB is plenty). */
static int read_fields(struct kernel_test *t)
{
	char buf[65536];
	size_t size = 0, at = 0;

	for (;;) {
		ssize_t k = read(t->fd, buf + size, sizeof(buf) - size);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		size += (size_t) k;
		if (size == sizeof(buf))
			return -EFBIG;
	}
	t->fd = safe_close(t->fd);
	for (size_t i = 0; i < _FIELD_MAX; i++) {
		const char *end = at < size ? memchr(buf + at, 0, size - at) : NULL;

		if (!end)
			return -EPROTO;
		t->fields[i] = strdup(buf + at);
		if (!t->fields[i])
			return -ENOMEM;
		at = (size_t) (end - buf) + 1;
	}
	return 0;
}

static int start_children(struct dm2_context *ctx, const struct recipe_set *set,
			  const char *name, const char *version,
			  struct kernel_test *tests, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int p[2];

		if (pipe2(p, O_CLOEXEC) < 0)
			return log_error_errno(errno, "Failed to create a pipe: %m");
		fflush(NULL);
		tests[i].pid = fork();
		if (tests[i].pid < 0) {
			safe_close(p[0]);
			safe_close(p[1]);
			return log_error_errno(errno,
					       "Failed to start the build for %s: %m",
					       tests[i].kver);
		}
		if (tests[i].pid == 0) {
			safe_close(p[0]);
			run_child(ctx, set, name, tests[i].kver, version, p[1]);
		}
		safe_close(p[1]);
		tests[i].fd = p[0];
	}
	return 0;
}

/* Each kernel's result; a child that died without one is a failure of its own. */
static void collect_children(struct kernel_test *tests, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct kernel_test *t = &tests[i];
		int r = t->fd >= 0 ? read_fields(t) : -ECHILD;
		int status = 0;

		if (t->pid > 0)
			(void) waitpid(t->pid, &status, 0);
		if (r < 0) {
			for (size_t f = 0; f < _FIELD_MAX; f++)
				t->fields[f] = mfree(t->fields[f]);
			t->fields[FIELD_STATE] = strdup("failed");
			t->fields[FIELD_STAGE] = strdup("building");
			(void) asprintf(
				&t->fields[FIELD_REASON],
				"the build process ended without a result (status %i)",
				status);
			t->exit_code = EXIT_FAILURE_GENERIC;
			continue;
		}
		if (safe_atoi(t->fields[FIELD_ERROR], &r) < 0)
			r = -EIO;
		t->exit_code = exit_code_from_job(
			job_state_from_string(t->fields[FIELD_STATE]),
			job_state_from_string(t->fields[FIELD_STAGE]), r);
	}
}

static const char *empty_to_null(const char *s)
{
	return isempty(s) ? NULL : s;
}

/* "built", "failed at fetching", "skipped", "waiting". */
static char *result_text(const struct kernel_test *t)
{
	if (!isempty(t->fields[FIELD_STAGE]))
		return strjoin(t->fields[FIELD_STATE], " at ", t->fields[FIELD_STAGE]);
	return strdup(strempty(t->fields[FIELD_STATE]));
}

static void print_json(const char *name, const struct kernel_test *tests, size_t n)
{
	printf("{\"version\":1,\"recipe\":");
	cli_json_string(stdout, name);
	printf(",\"kernels\":[");
	for (size_t i = 0; i < n; i++) {
		const struct kernel_test *t = &tests[i];

		printf("%s\n  {\"kernel\":", i ? "," : "");
		cli_json_string(stdout, t->kver);
		printf(",\"source\":");
		cli_json_string(stdout, empty_to_null(t->fields[FIELD_VERSION]));
		printf(",\"result\":");
		cli_json_string(stdout, t->fields[FIELD_STATE]);
		printf(",\"stage\":");
		cli_json_string(stdout, empty_to_null(t->fields[FIELD_STAGE]));
		printf(",\"error\":");
		cli_json_string(stdout, empty_to_null(t->fields[FIELD_REASON]));
		printf(",\"log\":");
		cli_json_string(stdout, empty_to_null(t->fields[FIELD_LOG]));
		printf(",\"exit_code\":%i}", t->exit_code);
	}
	printf("%s]}\n", n ? "\n" : "");
}

static void print_table(const struct kernel_test *tests, size_t n)
{
	int wk = (int) strlen("KERNEL"), wv = (int) strlen("SOURCE"),
	    wr = (int) strlen("RESULT");
	_cleanup_strv_free_ char **results = NULL;

	for (size_t i = 0; i < n; i++) {
		char *res = result_text(&tests[i]);

		if (!res || strv_consume(&results, res) < 0)
			return (void) log_oom();
		wk = MAX(wk, (int) strlen(tests[i].kver));
		wv = MAX(wv, (int) strlen(strempty(tests[i].fields[FIELD_VERSION])));
		wr = MAX(wr, (int) strlen(res));
	}
	printf("%-*s  %-*s  %-*s  %s\n", wk, "KERNEL", wv, "SOURCE", wr, "RESULT", "LOG");
	for (size_t i = 0; i < n; i++) {
		const struct kernel_test *t = &tests[i];
		_cleanup_free_ char *reason =
			escape_terminal(strempty(t->fields[FIELD_REASON]), NULL);

		printf("%-*s  %-*s  %-*s  %s\n", wk, t->kver, wv,
		       isempty(t->fields[FIELD_VERSION]) ? "-" : t->fields[FIELD_VERSION],
		       wr, results[i],
		       isempty(t->fields[FIELD_LOG]) ? "-" : t->fields[FIELD_LOG]);
		if (!isempty(t->fields[FIELD_REASON]))
			printf("%-*s  %s\n", wk, "", strna(reason));
	}
}

/* As exit_code_merge() (a failure wins, then waiting, then skipped), but a test that
 * built for some kernel succeeded where nothing failed: a recipe's Kernel= ranges are
 * meant to leave kernels out. */
static int overall_exit(const struct kernel_test *tests, size_t n)
{
	bool built = false;
	int ret = EXIT_OK;

	for (size_t i = 0; i < n; i++) {
		ret = exit_code_merge(ret, tests[i].exit_code);
		built = built || tests[i].exit_code == EXIT_OK;
	}
	if (built && (ret == EXIT_SKIPPED || ret == EXIT_WAITING))
		return EXIT_OK;
	return ret;
}

/* One pool for all the builds, handed to them as $DM2_JOBSERVER (builder.c takes it). */
static int share_jobserver(struct dm2_context *ctx, struct jobserver *js)
{
	_cleanup_free_ char *env = NULL;
	int r;

	if (getenv(JOBSERVER_ENV) || (ctx->config && ctx->config->make_jobs > 0))
		return 0; /* dm2d's pool, or MakeJobs= asks for make -j per build */
	r = jobserver_new(builder_make_jobs(ctx), js);
	if (r < 0)
		return log_warning_errno(r,
					 "Cannot create a make jobserver, ignoring: %m"),
		       0;
	env = jobserver_env(js);
	if (!env)
		return log_oom();
	if (putenv(env) != 0)
		return log_error_errno(errno, "Failed to set $" JOBSERVER_ENV ": %m");
	TAKE_PTR(env); /* putenv() keeps the string */
	log_debug("The builds share a make jobserver of %u tokens.", js->tokens);
	return 0;
}

/* The table in version order, oldest first. */
static int kernel_test_cmp(const void *a, const void *b)
{
	const struct kernel_test *x = a, *y = b;

	return version_compare(x->kver, y->kver);
}

static int list_kernels(struct dm2_context *ctx, struct kernel_test **ret, size_t *ret_n)
{
	struct kbw_kernel **ks = NULL;
	struct kernel_test *tests;
	size_t n = 0;
	int r;

	r = kernels_list(ctx, &ks, &n);
	if (r < 0)
		return log_error_errno(r,
				       "Failed to list kernels in '%s/lib/modules': %m",
				       streq(ctx->root, "/") ? "" : ctx->root);
	tests = calloc(MAX(n, 1U), sizeof(*tests));
	for (size_t i = 0; tests && i < n; i++) {
		tests[i] = (struct kernel_test){
			.fd = -EBADF, .kver = strdup(kbw_kernel_release(ks[i]))};
		if (!tests[i].kver)
			r = -ENOMEM;
	}
	kernels_free(ks, n);
	if (tests && r >= 0)
		qsort(tests, n, sizeof(*tests), kernel_test_cmp);
	if (!tests || r < 0) {
		for (size_t i = 0; tests && i < n; i++)
			kernel_test_done(&tests[i]);
		free(tests);
		return log_oom();
	}
	*ret = tests;
	*ret_n = n;
	return 0;
}

int build_all_kernels(struct cli *cli, const struct recipe_set *set, const char *name,
		      const char *version)
{
	_cleanup_(jobserver_done) struct jobserver js = JOBSERVER_NULL;
	struct kernel_test *tests = NULL;
	struct dm2_context *ctx;
	size_t n = 0;
	int r, ret;

	r = cli_context(cli, &ctx);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	r = list_kernels(ctx, &tests, &n);
	if (r < 0)
		return cli_exit_code_from_errno(r);
	if (n == 0) {
		free(tests);
		log_error("No kernels in '%s/lib/modules'.",
			  streq(ctx->root, "/") ? "" : ctx->root);
		return EXIT_NOT_FOUND;
	}
	r = share_jobserver(ctx, &js);
	if (r >= 0)
		r = start_children(ctx, set, name, version, tests, n);
	collect_children(tests, n);
	if (r < 0)
		ret = cli_exit_code_from_errno(r);
	else {
		if (cli->json)
			print_json(name, tests, n);
		else
			print_table(tests, n);
		ret = overall_exit(tests, n);
	}
	for (size_t i = 0; i < n; i++)
		kernel_test_done(&tests[i]);
	free(tests);
	return ret;
}
