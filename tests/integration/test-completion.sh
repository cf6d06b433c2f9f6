# SPDX-License-Identifier: LGPL-2.1-or-later
# completion/dm2 sourced in bash: commands, subcommands, options, recipe names and kernels
# (of --root), files after options that take them; cmake --install puts it where
# bash-completion looks.
set -euo pipefail
. "$DM2_SOURCE_DIR/tests/integration/lib.sh"

lib_init
lib_add_kernel 9.9.9-other
mkdir -p "$ROOT/usr/share/dm2/recipes"
cp -r "$DM2_SOURCE_DIR/recipes/dm2-example.recipe" "$DM2_SOURCE_DIR/recipes/dm2-example" \
	"$ROOT/usr/share/dm2/recipes/"
BIN=$(dirname "$DM2")

# complete WORDS...: what bash offers for the last word (may be empty), sorted, one line.
complete_words() {
	PATH=$BIN:$PATH bash -c '
		source "$1/completion/dm2"
		shift
		COMP_WORDS=("$@")
		COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"
		_dm2
		printf "%s\n" "${COMPREPLY[@]}" | LC_ALL=C sort | tr "\n" " "
	' bash "$DM2_SOURCE_DIR" "$@"
}
expect() { # "WANT" WORDS...
	local want=$1 got
	shift
	got=$(complete_words "$@")
	[ "$got" = "$want" ] || fail "completing '$*': got '$got', expected '$want'"
}

expect "install " dm2 inst
expect "kernel key " dm2 k
expect "lint list " dm2 recipe l
expect "adopt-dkms generate show status " dm2 key ""
expect "stat " dm2 cache st
expect "import list status takeover " dm2 --json dkms ""
expect "--all-kernels " dm2 install --al
expect "--version " dm2 --vers
expect "--dry-run " dm2 dkms takeover --d
expect "sha256 sha384 sha512 " dm2 sign x.ko --hash ""
# Recipes and kernels of --root.
expect "dm2-example " dm2 --root "$ROOT" install dm2
expect "dm2-example " dm2 --root="$ROOT" recipe show ""
expect "$(printf '%s\n' "$KVER" 9.9.9-other | LC_ALL=C sort | tr '\n' ' ')" dm2 --root "$ROOT" status -k ""
expect "9.9.9-other " dm2 --root "$ROOT" trigger 9.9
# Files after --cert, directories for dkms import.
mkdir -p "$T/files/sub"
touch "$T/files/cert.der"
expect "$T/files/cert.der " dm2 verify --cert "$T/files/cert"
expect "$T/files/sub " dm2 dkms import "$T/files/s"
pass "bash completion: commands, subcommands, options, recipes, kernels, files"

# Installed where bash-completion finds it.
cmake --install "$DM2_BUILD_DIR" --prefix "$T/inst" >"$T/install.log" 2>&1 ||
	fail "cmake --install: $(tail -n 5 "$T/install.log")"
[ -f "$T/inst/share/bash-completion/completions/dm2" ] ||
	fail "not installed to share/bash-completion/completions/dm2: $(grep -i compl "$T/install.log")"
pass "installed to share/bash-completion/completions/dm2"
