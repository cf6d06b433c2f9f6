/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What remote-oci.c reads from and writes to a registry, as pure functions (so that unit
 * tests and fuzzers reach them): a strict little JSON reader, the WWW-Authenticate
 * challenge, repository names and tags, and the image manifest we push. Registry answers
 * are untrusted input: everything is bounded, and anything unexpected is refused.
 */
#include <inttypes.h>
#include <stdio.h>
#include <strings.h>

#include "remote-internal.h"

#define JSON_MAX_DEPTH 32

/* ---- JSON: find the string at a path of object keys ---- */

struct json {
	const char *p, *end;
};

static void json_ws(struct json *j)
{
	while (j->p < j->end && *j->p && strchr(" \t\r\n", *j->p))
		j->p++;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int json_u4(struct json *j, uint32_t *ret)
{
	uint32_t v = 0;

	if (j->end - j->p < 4)
		return -EBADMSG;
	for (int i = 0; i < 4; i++) {
		int h = hexval(j->p[i]);

		if (h < 0)
			return -EBADMSG;
		v = v << 4 | (uint32_t) h;
	}
	j->p += 4;
	*ret = v;
	return 0;
}

static void utf8_put(FILE *f, uint32_t cp)
{
	if (cp < 0x80)
		fputc((int) cp, f);
	else if (cp < 0x800) {
		fputc((int) (0xc0 | cp >> 6), f);
		fputc((int) (0x80 | (cp & 0x3f)), f);
	} else if (cp < 0x10000) {
		fputc((int) (0xe0 | cp >> 12), f);
		fputc((int) (0x80 | ((cp >> 6) & 0x3f)), f);
		fputc((int) (0x80 | (cp & 0x3f)), f);
	} else {
		fputc((int) (0xf0 | cp >> 18), f);
		fputc((int) (0x80 | ((cp >> 12) & 0x3f)), f);
		fputc((int) (0x80 | ((cp >> 6) & 0x3f)), f);
		fputc((int) (0x80 | (cp & 0x3f)), f);
	}
}

/* One "\" escape after the backslash, decoded into f. */
static int json_escape(struct json *j, FILE *f)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	uint32_t cp, lo;
	const char *e;

	if (j->p >= j->end)
		return -EBADMSG;
	e = *j->p ? strchr(from, *j->p) : NULL;
	j->p++;
	if (e) {
		fputc(to[e - from], f);
		return 0;
	}
	if (j->p[-1] != 'u' || json_u4(j, &cp) < 0)
		return -EBADMSG;
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return -EBADMSG;
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
			return -EBADMSG;
		j->p += 2;
		if (json_u4(j, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
			return -EBADMSG;
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
	}
	if (cp == 0)
		return -EBADMSG; /* we hand out C strings */
	utf8_put(f, cp);
	return 0;
}

/* A string at j->p (the opening quote); its decoded value in *ret if ret is not NULL. */
static int json_string(struct json *j, char **ret)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_fclose_ FILE *f = NULL;
	size_t len = 0;
	int r = 0;

	if (j->p >= j->end || *j->p != '"')
		return -EBADMSG;
	j->p++;
	f = open_memstream(&text, &len);
	if (!f)
		return -ENOMEM;
	for (;;) {
		if (j->p >= j->end || (unsigned char) *j->p < 0x20)
			return -EBADMSG;
		if (*j->p == '"')
			break;
		if (*j->p == '\\') {
			j->p++;
			r = json_escape(j, f);
			if (r < 0)
				return r;
			continue;
		}
		fputc(*j->p++, f);
	}
	j->p++;
	if (fclose(TAKE_PTR(f)) != 0)
		return -ENOMEM;
	if (ret)
		*ret = TAKE_PTR(text);
	return 0;
}

static int json_value(struct json *j, unsigned depth, const char *const *path,
		      char **ret);

static int json_scalar(struct json *j)
{
	static const char *const words[] = {"true", "false", "null"};
	const char *s = j->p;

	for (size_t i = 0; i < ELEMENTSOF(words); i++) {
		size_t l = strlen(words[i]);

		if ((size_t) (j->end - j->p) >= l && strncmp(j->p, words[i], l) == 0) {
			j->p += l;
			return 0;
		}
	}
	/* A number: -?digits[.digits][e[+-]digits], checked loosely but bounded. */
	if (j->p < j->end && *j->p == '-')
		j->p++;
	while (j->p < j->end && *j->p && strchr("0123456789.eE+-", *j->p))
		j->p++;
	return j->p > s && (j->p[-1] >= '0' && j->p[-1] <= '9') ? 0 : -EBADMSG;
}

/* After a member of an object or array: 1 at ',' (another follows), 0 at the closing
 * bracket (consumed), -EBADMSG at anything else. */
static int json_next(struct json *j, char close)
{
	json_ws(j);
	if (j->p < j->end && (*j->p == ',' || *j->p == close))
		return *j->p++ == ',';
	return -EBADMSG;
}

/* An object; when path is not empty, the value under key path[0] is searched further. */
static int json_object(struct json *j, unsigned depth, const char *const *path, char **ret)
{
	j->p++;
	json_ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return 0;
	}
	for (;;) {
		_cleanup_free_ char *key = NULL;
		bool want;
		int r;

		json_ws(j);
		r = json_string(j, &key);
		if (r < 0)
			return r;
		json_ws(j);
		if (j->p >= j->end || *j->p != ':')
			return -EBADMSG;
		j->p++;
		want = path && path[0] && streq(key, path[0]);
		/* A key given twice: the later value would win elsewhere; refuse instead. */
		if (want && ret && *ret)
			return -EBADMSG;
		r = json_value(j, depth + 1, want ? path + 1 : NULL, want ? ret : NULL);
		if (r < 0)
			return r;
		r = json_next(j, '}');
		if (r <= 0)
			return r;
	}
}

static int json_array(struct json *j, unsigned depth)
{
	j->p++;
	json_ws(j);
	if (j->p < j->end && *j->p == ']') {
		j->p++;
		return 0;
	}
	for (;;) {
		int r = json_value(j, depth + 1, NULL, NULL);

		if (r < 0)
			return r;
		r = json_next(j, ']');
		if (r <= 0)
			return r;
	}
}

static int json_value(struct json *j, unsigned depth, const char *const *path, char **ret)
{
	if (depth > JSON_MAX_DEPTH)
		return -EBADMSG;
	json_ws(j);
	if (j->p >= j->end)
		return -EBADMSG;
	if (*j->p == '{')
		return json_object(j, depth, path && path[0] ? path : NULL, ret);
	if (path && path[0])
		return -EBADMSG; /* the path goes through something that is not an object */
	if (*j->p == '[')
		return json_array(j, depth);
	if (*j->p == '"')
		return json_string(j, ret);
	if (ret)
		return -EBADMSG; /* the value at the path is not a string */
	return json_scalar(j);
}

int oci_json_string(const char *text, size_t len, const char *const *path, char **ret)
{
	struct json j = {.p = text, .end = text + len};
	char *v = NULL;
	int r;

	r = json_value(&j, 0, path, &v);
	json_ws(&j);
	if (r >= 0 && j.p != j.end)
		r = -EBADMSG;
	if (r >= 0 && !v)
		r = -ENOENT;
	if (r < 0) {
		free(v);
		return r;
	}
	*ret = v;
	return 0;
}

/* ---- WWW-Authenticate: Bearer realm="...",service="...",scope="..." (RFC 9110 11.6.1) ---- */

void oci_challenge_done(struct oci_challenge *c)
{
	free(c->realm);
	free(c->service);
	free(c->scope);
	*c = (struct oci_challenge){};
}

static bool is_token_char(char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
	       (c && strchr("!#$%&'*+-.^_`|~/:=", c));
}

/* One auth-param value: a quoted-string or a token. */
static int challenge_value(const char **p, char **ret)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_fclose_ FILE *f = NULL;
	size_t len = 0;

	f = open_memstream(&text, &len);
	if (!f)
		return -ENOMEM;
	if (**p == '"') {
		for ((*p)++; **p != '"'; (*p)++) {
			if (**p == '\\')
				(*p)++;
			if (**p == '\0' || (unsigned char) **p < 0x20)
				return -EBADMSG;
			fputc(**p, f);
		}
		(*p)++;
	} else
		while (is_token_char(**p) && **p != ',')
			fputc(*(*p)++, f);
	if (fclose(TAKE_PTR(f)) != 0)
		return -ENOMEM;
	*ret = TAKE_PTR(text);
	return 0;
}

int oci_challenge_parse(const char *header, struct oci_challenge *ret)
{
	struct oci_challenge c = {};
	const char *p = header;
	int r = 0;

	if (strncasecmp(p, "Bearer ", 7) == 0)
		c.bearer = true;
	else if (strncasecmp(p, "Basic", 5) == 0 && (p[5] == '\0' || p[5] == ' '))
		c.bearer = false;
	else
		return -EOPNOTSUPP;
	p += c.bearer ? 7 : 5;
	while (*p && r >= 0) {
		_cleanup_free_ char *value = NULL;
		const char *name = (p += strspn(p, " \t,"));
		size_t nl = strcspn(p, "= \t");
		char **slot = NULL;

		if (*p == '\0')
			break;
		p += nl;
		if (*p != '=' || nl == 0) {
			r = -EBADMSG;
			break;
		}
		p++;
		r = challenge_value(&p, &value);
		if (r < 0)
			break;
		if (nl == 5 && strncasecmp(name, "realm", 5) == 0)
			slot = &c.realm;
		else if (nl == 7 && strncasecmp(name, "service", 7) == 0)
			slot = &c.service;
		else if (nl == 5 && strncasecmp(name, "scope", 5) == 0)
			slot = &c.scope;
		if (slot) {
			free(*slot);
			*slot = TAKE_PTR(value);
		}
		if (*p && *p != ',' && *p != ' ')
			r = -EBADMSG;
	}
	if (r >= 0 && c.bearer &&
	    (!c.realm || (!startswith(c.realm, "https://") && !startswith(c.realm, "http://"))))
		r = -EBADMSG; /* nowhere to get a token from, or somewhere we never go */
	if (r < 0) {
		oci_challenge_done(&c);
		return r;
	}
	*ret = c;
	return 0;
}

/* ---- names ---- */

static bool lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static bool component_valid(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t start = i;

		while (i < n && lower_alnum(s[i]))
			i++;
		if (i == start)
			return false;
		if (i == n)
			return true;
		if (s[i] == '.')
			i++;
		else if (s[i] == '_')
			i += i + 1 < n && s[i + 1] == '_' ? 2 : 1;
		else if (s[i] == '-')
			while (i < n && s[i] == '-')
				i++;
		else
			return false;
		if (i == n)
			return false;
	}
	return false; /* empty */
}

bool oci_repository_valid(const char *repo)
{
	/* Distribution's grammar: components separated by '/'. */
	size_t len = strlen(repo);

	if (len == 0 || len > 255)
		return false;
	for (const char *p = repo;;) {
		size_t n = strcspn(p, "/");

		if (!component_valid(p, n))
			return false;
		if (p[n] == '\0')
			return true;
		p += n + 1;
	}
}

int oci_tag_from_key(const char *key, char ret[static OCI_TAG_SIZE])
{
	/* A tag is [A-Za-z0-9_][A-Za-z0-9._-]{0,127}: "dm2-" and the 64 hex digits fit. */
	if (!cache_key_valid(key))
		return -EINVAL;
	memcpy(ret, "dm2-", 4);
	memcpy(ret + 4, key, CACHE_KEY_SIZE);
	return 0;
}

bool oci_tag_valid(const char *tag)
{
	size_t len = strlen(tag);

	if (len == 0 || len > 128)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = tag[i];
		bool ok = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
			  c == '_' || (i > 0 && (c == '.' || c == '-'));

		if (!ok)
			return false;
	}
	return true;
}

/* ---- the image manifest ---- */

static void descriptor(FILE *f, const char *media_type, const char *sha256, uint64_t size)
{
	fprintf(f, "{\"mediaType\":\"%s\",\"digest\":\"sha256:%s\",\"size\":%" PRIu64 "}",
		media_type, sha256, size);
}

int oci_manifest_build(const char *key, const struct remote_object *config,
		       const struct remote_object *layers, size_t n_layers, char **ret,
		       size_t *ret_len)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_fclose_ FILE *f = NULL;
	size_t len = 0;
	bool first = true;

	if (!cache_key_valid(key))
		return -EINVAL;
	f = open_memstream(&text, &len);
	if (!f)
		return -ENOMEM;
	fputs("{\"schemaVersion\":2,\"mediaType\":\"" OCI_MEDIA_MANIFEST "\",\"config\":", f);
	descriptor(f, OCI_MEDIA_DM2_MANIFEST, config->sha256, config->size);
	fputs(",\"layers\":[", f);
	for (size_t i = 0; i < n_layers; i++) {
		bool dup = false;

		/* Each blob once: the registry needs to know it is referenced, not how often. */
		for (size_t k = 0; k < i && !dup; k++)
			dup = streq(layers[k].sha256, layers[i].sha256);
		if (dup)
			continue;
		if (!first)
			fputc(',', f);
		descriptor(f, OCI_MEDIA_DM2_OBJECT, layers[i].sha256, layers[i].size);
		first = false;
	}
	fprintf(f, "],\"annotations\":{\"org.dm2.build-key\":\"%s\"}}", key);
	if (fclose(TAKE_PTR(f)) != 0)
		return -ENOMEM;
	*ret = TAKE_PTR(text);
	*ret_len = len;
	return 0;
}

int oci_manifest_config(const char *text, size_t len, struct remote_object *ret)
{
	static const char *const type_path[] = {"config", "mediaType", NULL};
	static const char *const digest_path[] = {"config", "digest", NULL};
	_cleanup_free_ char *type = NULL, *digest = NULL;
	struct remote_object o = {};
	const char *hex;
	int r;

	r = oci_json_string(text, len, type_path, &type);
	if (r >= 0)
		r = oci_json_string(text, len, digest_path, &digest);
	if (r < 0)
		return r;
	if (!streq(type, OCI_MEDIA_DM2_MANIFEST))
		return -EMEDIUMTYPE;
	hex = startswith(digest, "sha256:");
	if (!hex || !sha256_hex_canonical(hex))
		return -EBADMSG;
	memcpy(o.sha256, hex, SHA256_HEX_SIZE);
	*ret = o;
	return 0;
}
