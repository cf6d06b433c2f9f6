/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A job's build log: a header saying what was built from what (so a log read weeks later,
 * or sent in a bug report, stands alone), then the build's output, or the reason the
 * sources could not be prepared. Install jobs write logs/NAME/KVER/build.log, test builds
 * (build_only) test.log beside it, so a test never hides the installed module's log.
 */
#include <fcntl.h>
#include <unistd.h>

#include "pipeline/build-log.h"
#include "pipeline/job-internal.h"
#include "shared/fs-util.h"
#include "shared/log.h"
#include "shared/url.h"
#include "shared/util.h"

const char *build_log_name(const struct job *j)
{
	return j->o->build_only ? "test.log" : "build.log";
}

static void header_patches(FILE *f, const struct job *j)
{
	const struct recipe_source *s = j->source;

	if (!s || s->n_patches == 0) {
		fputs("# patches: none\n", f);
		return;
	}
	for (size_t i = 0; i < s->n_patches; i++) {
		const struct recipe_patch *p = &s->patches[i];
		const char *slash = strrchr(p->path, '/');

		fprintf(f, "# patch:   %s", slash ? slash + 1 : p->path);
		if (p->kernel.n > 0)
			fprintf(f, " (Kernel=%s: %s)", p->kernel.text,
				recipe_patch_for_kernel(p, kbw_kernel_version(j->kernel))
					? "applied"
					: "not for this kernel");
		if (p->match)
			fprintf(f, " (only if the release matches '%s')", p->match);
		fputc('\n', f);
	}
}

/* The command line as libkbuild-wrap runs it (build.c), give or take the jobserver. */
static void header_command(FILE *f, const struct job *j)
{
	const struct recipe *r = j->recipe;

	if (!isempty(r->make_command)) {
		fprintf(f, "# command: %s\n", r->make_command);
		return;
	}
	fprintf(f, "# make:    make -C%s M=<sources>%s%s CC=%s KERNELRELEASE=%s",
		strna(kbw_kernel_build_dir(j->kernel)), isempty(r->subdir) ? "" : "/",
		strempty(r->subdir), strna(kbw_kernel_cc(j->kernel)), j->kver);
	STRV_FOREACH(v, r->make_vars)
	fprintf(f, " %s", *v);
	fputs(" modules\n", f);
}

int build_log_header(const struct job *j, char **ret)
{
	const struct recipe_source *s = j->source;
	_cleanup_free_ char *buf = NULL;
	char when[32];
	size_t size = 0;
	FILE *f;

	f = open_memstream(&buf, &size);
	if (!f)
		return -ENOMEM;
	fprintf(f, "# dm2 %s %s log\n", DM2_VERSION,
		j->o->build_only ? "test build" : "build");
	fprintf(f, "# recipe:  %s %s (%s)\n", j->name, strna(s ? s->version : NULL),
		strna(j->recipe->path));
	if (s && s->path)
		fprintf(f, "# source:  %s\n", s->path);
	STRV_FOREACH(u, s ? s->urls : NULL) {
		/* A log is read by anyone who may read logs: no userinfo or query secrets. */
		_cleanup_free_ char *shown = url_redact(*u);

		fprintf(f, "# source:  %s\n", strna(shown));
	}
	if (s && s->sha256)
		fprintf(f, "# SHA256=  %s\n", s->sha256);
	if (s && s->git_tree)
		fprintf(f, "# GitTree= %s\n", s->git_tree);
	if (j->content_id)
		fprintf(f, "# content: %s\n", j->content_id);
	header_patches(f, j);
	header_command(f, j);
	fprintf(f, "# kernel:  %s (%s, identity %s)\n", j->kver,
		strna(kbw_kernel_arch(j->kernel)), strna(kbw_kernel_identity(j->kernel)));
	fprintf(f, "# date:    %s\n", format_timestamp(when, sizeof(when), now_usec()));
	if (fclose(f) != 0)
		return -ENOMEM;
	*ret = TAKE_PTR(buf);
	return 0;
}

/* log_path = header + body + body2, written atomically. */
static int write_log(struct job *j, const char *body, size_t body_size, const char *body2)
{
	_cleanup_free_ char *header = NULL, *all = NULL, *dir = NULL;
	size_t hs, b2s = strlen(strempty(body2));
	int r;

	r = build_log_header(j, &header);
	if (r < 0)
		return r;
	hs = strlen(header);
	all = malloc(hs + body_size + b2s + 1);
	if (!all)
		return -ENOMEM;
	memcpy(all, header, hs);
	if (body_size > 0)
		memcpy(all + hs, body, body_size);
	memcpy(all + hs + body_size, strempty(body2), b2s);
	dir = strndup(j->log_path, (size_t) (strrchr(j->log_path, '/') - j->log_path));
	if (!dir)
		return -ENOMEM;
	r = mkdir_p_at(AT_FDCWD, dir, 0755);
	if (r < 0)
		return r;
	r = write_file_atomic_at(AT_FDCWD, j->log_path, all, hs + body_size + b2s, 0644);
	if (r >= 0)
		j->log_written = true;
	return r;
}

int build_log_finish(struct job *j, const char *make_log)
{
	_cleanup_free_ char *text = NULL;
	size_t size = 0;
	int r;

	r = read_full_file_at(AT_FDCWD, make_log, BUILD_LOG_MAX, &text, &size);
	if (r == -ENOENT)
		r = 0;	 /* the build never started: the header alone */
	if (r == -EFBIG) /* a build that flooded its log: kept as it is, headless */
		return renameat(AT_FDCWD, make_log, AT_FDCWD, j->log_path) < 0 ? -errno
									       : 0;
	if (r < 0)
		return r;
	r = write_log(j, text, size, NULL);
	if (r >= 0)
		(void) unlink(make_log);
	return r;
}

int build_log_failure(struct job *j, const char *reason)
{
	_cleanup_free_ char *line = strjoin("dm2: ", strempty(reason), "\n");

	if (!line)
		return -ENOMEM;
	return write_log(j, NULL, 0, line);
}
