# SPDX-License-Identifier: LGPL-2.1-or-later
# Broken databases recover (issue 12, attack 8). The state db is rebuilt from the install
# manifests beside the modules when it is emptied, half truncated, overwritten with garbage
# or removed: `dm2 status` (a reader) says so in one line and changes nothing; the first
# writer (dm2 install, dm2d) moves a damaged one aside, and status, ownership and uninstall
# work again. A broken cache index is moved aside and started empty: installs rebuild,
# --force too. Real builds, real modules.
set -eu -o pipefail
source "$(dirname "$0")/lib.sh"
: "${DM2D:=$(dirname "$DM2")/dm2d}"

lib_init
lib_copy_recipe dm2-example
# A second recipe: the example under another name and module.
mkdir -p "$RECIPES/two-src"
echo "obj-m := dm2_two.o" >"$RECIPES/two-src/Kbuild"
sed 's/dm2_example/dm2_two/g' "$RECIPES/dm2-example/dm2_example.c" >"$RECIPES/two-src/dm2_two.c"
printf '[Recipe]\nName=two\nDescription=second\nLicense=GPL-2.0-only\n[Source]\nVersion=2.5\nPath=two-src\n[Build]\nModules=dm2_two\n' \
	>"$RECIPES/two.recipe"
chmod -R a+rX "$RECIPES"
DB=$ROOT/var/lib/dm2/state.db
IDX=$ROOT/var/cache/dm2/artifacts/index.db
MODDIR=$ROOT/lib/modules/$KVER/updates/dm2

dm2 install dm2-example two -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "first install"; }
[ -f "$ROOT/lib/modules/$KVER/.dm2/two.manifest" ] || fail "no manifest written"
grep -qx "Version=2.5" "$ROOT/lib/modules/$KVER/.dm2/two.manifest" || fail "manifest lacks Version="
signer=$(json_get "[m['signed_by'] for m in j['modules'] if m['name'] == 'two'][0]")

# What status says about both recipes, one line each.
summary() {
	json_get "'\n'.join('%s %s %s %s %s' % (m['name'], m['installed_version'], m['state'], m['signed_by'], ','.join(m['files'])) for m in j['modules'])"
}
summary >"$T/expected"
grep -c " installed " "$T/expected" | grep -qx 2 || fail "not both installed: $(cat "$T/expected")"

break_db() { # form file
	case $1 in
	zero) : >"$2" ;;
	half) truncate -s $(($(stat -c %s "$2") / 2)) "$2" ;;
	garbage) head -c 20000 /dev/urandom >"$2" ;;
	missing) rm -f "$2" ;;
	esac
	# What a crash or an admin leaves: the database file alone decides.
	rm -f "$2-wal" "$2-shm"
}

# ---- state.db, rebuilt by the CLI ----
for form in zero half garbage missing; do
	break_db $form "$DB"
	cp -a "$DB" "$T/before" 2>/dev/null || rm -f "$T/before"
	# A reader says what is wrong in one line, names the db, and changes nothing.
	rc=0
	dm2 status >"$T/out" 2>"$T/err" || rc=$?
	[ $rc = 1 ] || fail "$form: status exited $rc: $(cat "$T/out" "$T/err")"
	[ "$(wc -l <"$T/err")" = 1 ] || fail "$form: status said: $(cat "$T/err")"
	grep -q "state db '$DB' is \(damaged\|missing or empty\)" "$T/err" || fail "$form: $(cat "$T/err")"
	grep -q "No modules" "$T/out" && fail "$form: status claims no modules"
	if [ -e "$T/before" ]; then
		cmp -s "$DB" "$T/before" || fail "$form: the reader changed the db"
	fi
	ls "$ROOT/var/lib/dm2" | grep -q "broken-" && [ $form = zero ] && fail "zero: moved aside by a reader"

	# The first writer rebuilds it, and dm2 still owns its modules.
	dm2 install dm2-example -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "$form: install after rebuild"; }
	grep -q "not installed by dm2" "$T/out" && fail "$form: dm2 refused its own module"
	case $form in
	half | garbage)
		[ "$(grep -c "is damaged" "$T/out")" = 1 ] || fail "$form: no one-line move-aside: $(cat "$T/out")"
		aside=$(sed -n "s/.*moved it to '\([^']*\)'.*/\1/p" "$T/out")
		[ -f "$aside" ] || fail "$form: '$aside' does not exist"
		;;
	zero | missing)
		grep -q "was missing or empty while 2 install manifests exist" "$T/out" ||
			fail "$form: $(cat "$T/out")"
		;;
	esac
	summary >"$T/got"
	check_diff "$T/expected" "$T/got"
	[ "$(json_get "[m['version'] for m in j['modules'] if m['name'] == 'two'][0]")" = 2.5 ] ||
		fail "$form: version of two lost"
	pass "state.db $form: status says so, the first writer rebuilds it from the manifests"
done

# Uninstall works on a rebuilt db: the module goes, and so does its manifest.
dm2 uninstall two -k "$KVER" >/dev/null 2>&1 || fail "uninstall after rebuild"
[ ! -e "$MODDIR/dm2_two.ko" ] || fail "uninstall left dm2_two.ko"
[ ! -e "$ROOT/lib/modules/$KVER/.dm2/two.manifest" ] || fail "uninstall left the manifest"
pass "uninstall after a rebuild removes the module and its manifest"

# A file changed since dm2 installed it is not claimed by the rebuild.
dm2 install two -k "$KVER" >/dev/null 2>&1 || fail "reinstall two"
echo tampered >>"$MODDIR/dm2_two.ko"
break_db missing "$DB"
dm2 install dm2-example -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "install with a changed file"; }
[ "$(json_get "len([m for m in j['modules'] if m['name'] == 'two'])")" = 0 ] ||
	fail "the rebuild claimed a changed file"
rm "$MODDIR/dm2_two.ko"
dm2 install two -k "$KVER" >/dev/null 2>&1 || fail "install two again"
summary >"$T/expected"
pass "a changed file is not claimed by a rebuild"

# ---- state.db, rebuilt by dm2d ----
break_db garbage "$DB"
rc=0
timeout 300 "$DM2D" --root "$ROOT" --recipes "$RECIPES" --foreground --exit-when-idle \
	>"$T/dm2d.log" 2>&1 || rc=$?
[ $rc = 0 ] || { tail -20 "$T/dm2d.log"; fail "dm2d exited $rc on a damaged state db"; }
[ "$(grep -c "is damaged" "$T/dm2d.log")" = 1 ] || fail "dm2d: $(cat "$T/dm2d.log")"
summary >"$T/got"
check_diff "$T/expected" "$T/got"
pass "dm2d moves a damaged state db aside and rebuilds it"

# ---- the cache index ----
for form in zero half garbage missing; do
	break_db $form "$IDX"
	dm2 install dm2-example -k "$KVER" --force >"$T/out" 2>&1 ||
		{ cat "$T/out"; fail "index $form: install --force"; }
	grep -q "installed (built" "$T/out" || fail "index $form: $(cat "$T/out")"
	break_db $form "$IDX"
	dm2 install two -k "$KVER" >"$T/out" 2>&1 || { cat "$T/out"; fail "index $form: install"; }
	case $form in half | garbage)
		grep -q "build cache index '$IDX' was damaged" "$T/out" || fail "index $form: $(cat "$T/out")" ;;
	esac
	# And the next one is a cache hit again.
	dm2 install two -k "$KVER" >"$T/out" 2>&1 || fail "index $form: install again"
	grep -q "installed (from cache" "$T/out" || fail "index $form: no cache hit: $(cat "$T/out")"
	pass "cache index $form: moved aside or recreated, installs rebuild"
done
