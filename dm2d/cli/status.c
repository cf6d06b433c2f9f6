/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <sqlite3.h>
#include <time.h>

#include "cli/status.h"
#include "core/db.h"
#include "shared/util.h"

void status_rows_free(struct status_row *rows, size_t n)
{
	for (size_t i = 0; rows && i < n; i++) {
		struct status_row *s = &rows[i];

		free(s->name);
		free(s->version);
		free(s->kernel);
		free(s->arch);
		free(s->stage);
		free(s->reason);
		free(s->signer);
		free(s->log_path);
		free(s->install_dir);
		strv_free(s->files);
		strv_free(s->overrides);
		free(s->installed_version);
	}
	free(rows);
}

static int dup_col(sqlite3_stmt *st, int i, char **ret)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	*ret = NULL;
	if (!t)
		return 0;
	*ret = strdup((const char *) t);
	return *ret ? 0 : -ENOMEM;
}

static int split_col(sqlite3_stmt *st, int i, char ***ret)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	*ret = NULL;
	if (!t)
		return 0;
	return strv_split((const char *) t, "\n", ret);
}

/* The directory of the first file, relative to lib/modules/KVER. */
static int install_dir_of(const char *kver, char **files, char **ret)
{
	_cleanup_free_ char *prefix = NULL;
	const char *rel, *slash;

	*ret = NULL;
	if (!files || !files[0])
		return 0;
	prefix = strjoin(DM2_MODULES_DIR "/", kver, "/");
	if (!prefix)
		return -ENOMEM;
	rel = startswith(files[0], prefix) ?: files[0];
	slash = strrchr(rel, '/');
	*ret = slash ? strndup(rel, slash - rel) : strdup(".");
	return *ret ? 0 : -ENOMEM;
}

#define STATUS_SQL                                                                       \
	"SELECT j.recipe, j.version, j.kernel, k.arch, j.state, j.stage, j.reason, "     \
	"j.signer,"                                                                      \
	" j.from_cache, max(j.finished, j.started, j.created), j.log_path,"              \
	" (SELECT group_concat(path, char(10)) FROM installed_files f"                   \
	"   WHERE f.kernel = j.kernel AND f.recipe = j.recipe),"                         \
	" (SELECT group_concat(overrides_intree, char(10)) FROM installed_files f"       \
	"   WHERE f.kernel = j.kernel AND f.recipe = j.recipe AND overrides_intree IS "  \
	"NOT NULL),"                                                                     \
	" li.version, li.signer, li.from_cache"                                          \
	" FROM jobs j LEFT JOIN kernels k ON k.release = j.kernel"                       \
	" LEFT JOIN jobs li ON li.id = (SELECT max(id) FROM jobs WHERE recipe = "        \
	"j.recipe"                                                                       \
	"   AND kernel = j.kernel AND state = 'installed')"                              \
	" WHERE j.id = (SELECT max(id) FROM jobs WHERE recipe = j.recipe AND kernel = "  \
	"j.kernel)"                                                                      \
	" AND (?1 IS NULL OR j.recipe = ?1) AND (?2 IS NULL OR j.kernel = ?2)"           \
	" UNION ALL"                                                                     \
	" SELECT r.name, NULL, k.release, k.arch, NULL, NULL, NULL, NULL, 0, 0, "        \
	"NULL,"                                                                          \
	" NULL, NULL, NULL, NULL, 0"                                                     \
	" FROM recipes r CROSS JOIN kernels k WHERE k.state = 'complete'"                \
	" AND NOT EXISTS (SELECT 1 FROM jobs WHERE recipe = r.name AND kernel = "        \
	"k.release)"                                                                     \
	" AND (?1 IS NULL OR r.name = ?1) AND (?2 IS NULL OR k.release = ?2)"            \
	" ORDER BY 1, 3"

/* The state column: a job_state string, or NULL for a pair without a job (a row of the
 * second SELECT). A state this dm2 does not know (a newer dm2 wrote it) is bad input. */
static int state_col(sqlite3_stmt *st, int i, struct status_row *s)
{
	const char *t = (const char *) sqlite3_column_text(st, i);

	s->not_built = !t;
	if (s->not_built)
		return 0;
	s->state = job_state_from_string(t);
	return s->state < 0 ? -EBADMSG : 0;
}

static int row_from(sqlite3_stmt *st, struct status_row *s)
{
	int r = 0;

	*s = (struct status_row){
		.from_cache = sqlite3_column_int(st, 8) != 0,
		.when = (uint64_t) sqlite3_column_int64(st, 9),
	};
	if (dup_col(st, 0, &s->name) < 0 || dup_col(st, 1, &s->version) < 0 ||
	    dup_col(st, 2, &s->kernel) < 0 || dup_col(st, 3, &s->arch) < 0 ||
	    dup_col(st, 5, &s->stage) < 0 || dup_col(st, 6, &s->reason) < 0 ||
	    dup_col(st, 7, &s->signer) < 0 || dup_col(st, 10, &s->log_path) < 0 ||
	    split_col(st, 11, &s->files) < 0 || split_col(st, 12, &s->overrides) < 0 ||
	    dup_col(st, 13, &s->installed_version) < 0)
		r = -ENOMEM;
	if (r >= 0)
		r = state_col(st, 4, s);
	if (r >= 0 && s->files && !s->installed_version && s->version)
		r = free_and_strdup(&s->installed_version, s->version);
	if (r >= 0)
		r = install_dir_of(s->kernel, s->files, &s->install_dir);
	/* A failed rebuild keeps the old module: show who signed the one in place. */
	if (r >= 0 && !s->signer && s->files && sqlite3_column_text(st, 14))
		r = dup_col(st, 14, &s->signer);
	return r;
}

int status_collect(struct db *d, const char *name, const char *kver,
		   struct status_row **ret, size_t *ret_n)
{
	sqlite3 *sql = db_sqlite(d);
	sqlite3_stmt *st = NULL;
	struct status_row *rows = NULL;
	size_t n = 0;
	int r = 0, rc;

	if (!sql)
		return -EIO;
	rc = sqlite3_prepare_v2(sql, STATUS_SQL, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return (rc & 0xff) == SQLITE_BUSY ? -EBUSY : -EIO;
	if (name)
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (kver)
		sqlite3_bind_text(st, 2, kver, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct status_row *nr = realloc(rows, (n + 1) * sizeof(*rows));

		if (!nr) {
			r = -ENOMEM;
			break;
		}
		rows = nr;
		r = row_from(st, &rows[n]);
		n++;
		if (r < 0)
			break;
	}
	if (r >= 0 && rc != SQLITE_DONE)
		r = (rc & 0xff) == SQLITE_BUSY ? -EBUSY : -EIO;
	sqlite3_finalize(st);
	if (r < 0) {
		status_rows_free(rows, n);
		return r;
	}
	*ret = rows;
	*ret_n = n;
	return 0;
}

const char *status_state_name(const struct status_row *s)
{
	return s->not_built ? "not-built" : job_state_to_string(s->state);
}

char *status_state_text(const struct status_row *s)
{
	_cleanup_free_ char *kept = NULL;

	if (s->not_built)
		return strdup("not built");
	switch (s->state) {
	case JOB_STATE_FAILED:
		if (s->installed_version)
			kept = strjoin(" (", s->installed_version, " still installed)");
		return strjoin("failed at ", strna(s->stage), ": ", strna(s->reason),
			       strempty(kept));
	case JOB_STATE_SKIPPED:
	case JOB_STATE_WAITING:
		return strjoin(job_state_to_string(s->state), ": ", strna(s->reason));
	case JOB_STATE_QUEUED:
	case JOB_STATE_FETCHING:
	case JOB_STATE_BUILDING:
	case JOB_STATE_SIGNING:
	case JOB_STATE_INSTALLING:
	case JOB_STATE_INSTALLED:
	case JOB_STATE_BUILT:
	case _JOB_STATE_MAX:
	case _JOB_STATE_INVALID:
		break;
	}
	return strdup(strna(job_state_to_string(s->state)));
}

/* ORIGIN: whether the job's module was built or came from the cache; "-" for a job that
 * did not get that far (not built, skipped, waiting, still fetching or compiling, or
 * failed before it had a module). */
static const char *origin_text(const struct status_row *s)
{
	if (s->not_built)
		return "-";
	switch (s->state) {
	case JOB_STATE_FAILED:
		if (!s->stage ||
		    (!streq(s->stage, "signing") && !streq(s->stage, "installing")))
			return "-";
		break;
	case JOB_STATE_SIGNING:
	case JOB_STATE_INSTALLING:
	case JOB_STATE_INSTALLED:
	case JOB_STATE_BUILT:
		break;
	case JOB_STATE_QUEUED:
	case JOB_STATE_FETCHING:
	case JOB_STATE_BUILDING:
	case JOB_STATE_SKIPPED:
	case JOB_STATE_WAITING:
	case _JOB_STATE_MAX:
	case _JOB_STATE_INVALID:
		return "-";
	}
	return s->from_cache ? "cache" : "built";
}

static void format_when(uint64_t usec, char *buf, size_t n)
{
	if (usec == 0)
		snprintf(buf, n, "-");
	else
		format_timestamp(buf, n, usec);
}

enum {
	COL_NAME,
	COL_VERSION,
	COL_KERNEL,
	COL_ARCH,
	COL_SIGNER,
	COL_ORIGIN,
	COL_WHEN,
	COL_DIR,
	_COL_MAX
};

/* The cells of a row but its last (STATE), as printed. */
static void row_cells(const struct status_row *s, char *when, size_t when_size,
		      const char *cells[static _COL_MAX])
{
	format_when(s->when, when, when_size);
	cells[COL_NAME] = s->name;
	cells[COL_VERSION] = s->version ?: s->installed_version ?: "-";
	cells[COL_KERNEL] = s->kernel;
	cells[COL_ARCH] = s->arch ?: "-";
	cells[COL_SIGNER] = s->signer ?: "-";
	cells[COL_ORIGIN] = origin_text(s);
	cells[COL_WHEN] = when;
	cells[COL_DIR] = s->install_dir ?: "-";
}

/* Every column as wide as its widest cell (computed from what is printed, so no value
 * pushes the columns after it out of line). */
static void print_table(FILE *f, const struct status_row *rows, size_t n)
{
	static const char *const head[_COL_MAX] = {"NAME", "VERSION",	"KERNEL",
						   "ARCH", "SIGNED-BY", "ORIGIN",
						   "WHEN", "DIR"};
	int w[_COL_MAX];
	const char *cells[_COL_MAX];
	char when[32];

	for (size_t c = 0; c < _COL_MAX; c++)
		w[c] = (int) strlen(head[c]);
	for (size_t i = 0; i < n; i++) {
		row_cells(&rows[i], when, sizeof(when), cells);
		for (size_t c = 0; c < _COL_MAX; c++)
			w[c] = MAX(w[c], (int) strlen(cells[c]));
	}
	for (size_t c = 0; c < _COL_MAX; c++)
		fprintf(f, "%-*s  ", w[c], head[c]);
	fputs("STATE\n", f);
	for (size_t i = 0; i < n; i++) {
		const struct status_row *s = &rows[i];
		_cleanup_free_ char *state = status_state_text(s);
		_cleanup_free_ char *ov =
			s->overrides ? strv_join(s->overrides, ",") : NULL;

		row_cells(s, when, sizeof(when), cells);
		for (size_t c = 0; c < _COL_MAX; c++)
			fprintf(f, "%-*s  ", w[c], cells[c]);
		fprintf(f, "%s%s%s%s\n", strna(state), ov ? " (overrides in-tree " : "",
			strempty(ov), ov ? ")" : "");
	}
}

/* The reason column is a line of the build log, which the build wrote: escaped, it cannot
 * control the admin's terminal. Only the table's own line ends stay. */
int status_print_table(FILE *f, const struct status_row *rows, size_t n)
{
	_cleanup_free_ char *buf = NULL, *shown = NULL;
	size_t size = 0;
	FILE *m = open_memstream(&buf, &size);

	if (!m)
		return -ENOMEM;
	print_table(m, rows, n);
	if (fclose(m) != 0)
		return -ENOMEM;
	shown = escape_terminal(buf, "\n");
	if (!shown)
		return -ENOMEM;
	fputs(shown, f);
	return 0;
}

static void json_strv(FILE *f, char **l)
{
	fputc('[', f);
	STRV_FOREACH(s, l)
	{
		if (s != l)
			fputc(',', f);
		json_write_string(f, *s);
	}
	fputc(']', f);
}

void status_print_json(FILE *f, struct db *d, const struct status_row *rows, size_t n,
		       unsigned slots, const char *extra)
{
	fputs("{\"version\":1,\"modules\":[", f);
	for (size_t i = 0; i < n; i++) {
		const struct status_row *s = &rows[i];
		_cleanup_free_ char *text = status_state_text(s);
		char when[32] = "";
		struct tm tm;
		time_t t = (time_t) (s->when / 1000000ULL);

		if (s->when && gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (i > 0)
			fputc(',', f);
		fputs("{\"name\":", f);
		json_write_string(f, s->name);
		fputs(",\"version\":", f);
		json_write_string(f, s->version);
		fputs(",\"installed_version\":", f);
		json_write_string(f, s->installed_version);
		fputs(",\"kernel\":", f);
		json_write_string(f, s->kernel);
		fputs(",\"arch\":", f);
		json_write_string(f, s->arch);
		fputs(",\"state\":", f);
		json_write_string(f, status_state_name(s));
		fputs(",\"stage\":", f);
		json_write_string(f, s->stage);
		fputs(",\"reason\":", f);
		json_write_string(f, s->reason);
		fputs(",\"state_text\":", f);
		json_write_string(f, text);
		fputs(",\"signed_by\":", f);
		json_write_string(f, s->signer);
		fprintf(f, ",\"from_cache\":%s", s->from_cache ? "true" : "false");
		fputs(",\"when\":", f);
		json_write_string(f, s->when ? when : NULL);
		fprintf(f, ",\"when_usec\":%" PRIu64, s->when);
		fputs(",\"install_dir\":", f);
		json_write_string(f, s->install_dir);
		fputs(",\"files\":", f);
		json_strv(f, s->files);
		fputs(",\"overrides_intree\":", f);
		json_strv(f, s->overrides);
		fputs(",\"log\":", f);
		json_write_string(f, s->log_path);
		fputc('}', f);
	}
	fputs("],", f);
	status_print_json_progress(f, d, rows, n, slots);
	if (extra)
		fprintf(f, ",%s", extra);
	fputs("}\n", f);
}

struct progress {
	size_t done, running, queued, untimed;
	uint64_t left_sec;
};

/* One kernel's progress: its rows that ended, run and wait, and the time left over
 * `slots` builds at once from each recipe's recorded duration (a running one counted
 * whole: when it started is not in the row). */
static struct progress kernel_progress(struct db *d, const char *kver,
				       const struct status_row *rows, size_t n, unsigned slots)
{
	struct progress p = {};
	uint64_t left = 0;

	for (size_t i = 0; i < n; i++) {
		const struct status_row *s = &rows[i];
		uint64_t usec = 0;

		if (!streq(s->kernel, kver) || s->not_built)
			continue;
		if (job_state_is_final(s->state)) {
			p.done++;
			continue;
		}
		if (s->state == JOB_STATE_QUEUED)
			p.queued++;
		else
			p.running++;
		if (!d || db_duration_expected(d, s->name, kver, &usec) < 0)
			p.untimed++;
		left += usec;
	}
	p.left_sec = (left / MAX(slots, 1u) + 999999) / 1000000;
	return p;
}

static void print_kernel_progress(FILE *f, struct db *d, const char *kver,
				  const struct status_row *rows, size_t n, unsigned slots)
{
	struct progress p = kernel_progress(d, kver, rows, n, slots);

	if (p.running + p.queued == 0)
		return;
	fprintf(f, "Kernel %s: %zu done, %zu running, %zu queued; about %llu s left%s.\n",
		kver, p.done, p.running, p.queued, (unsigned long long) p.left_sec,
		p.untimed ? " (not counting builds never timed)" : "");
}

/* Whether row i is the first of its kernel. */
static bool first_of_kernel(const struct status_row *rows, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (streq(rows[j].kernel, rows[i].kernel))
			return false;
	return true;
}

void status_print_json_progress(FILE *f, struct db *d, const struct status_row *rows,
				size_t n, unsigned slots)
{
	bool any = false;

	fputs("\"progress\":[", f);
	for (size_t i = 0; i < n; i++) {
		struct progress p;

		if (!first_of_kernel(rows, i))
			continue;
		p = kernel_progress(d, rows[i].kernel, rows, n, slots);
		if (p.running + p.queued == 0)
			continue;
		fputs(any ? ",{\"kernel\":" : "{\"kernel\":", f);
		json_write_string(f, rows[i].kernel);
		fprintf(f, ",\"done\":%zu,\"running\":%zu,\"queued\":%zu,\"left_sec\":%" PRIu64
			",\"untimed\":%zu}", p.done, p.running, p.queued, p.left_sec, p.untimed);
		any = true;
	}
	fputc(']', f);
}

int status_print_progress(FILE *f, struct db *d, const struct status_row *rows, size_t n,
			  unsigned slots)
{
	for (size_t i = 0; i < n; i++)
		if (first_of_kernel(rows, i))
			print_kernel_progress(f, d, rows[i].kernel, rows, n, slots);
	return 0;
}
