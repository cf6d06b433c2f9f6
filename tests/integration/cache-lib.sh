# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by the remote cache tests (sourced, not run): a private nginx with WebDAV on
# 127.0.0.1, and manifests signed by hand the way a builder (or an attacker) would.
#
#   start_nginx TEMPLATE PREFIX     nginx from tests/helpers/TEMPLATE on a free port; sets
#                                   $port, appends its pid to nginx_pids
#   stop_nginx                      stop every nginx started
#   free_port                       print a free TCP port of 127.0.0.1
#   start_registry DIR PORT [YAML]  Debian's docker-registry on 127.0.0.1:PORT with its
#                                   config, storage and log in DIR, YAML appended to the
#                                   config (indented: more of http:, e.g. tls:); sets
#                                   $registry_pid; 1, with its log on stderr, if it does
#                                   not listen within 10 s
#   make_cert DIR CN                DIR/key.pem and DIR/cert.pem, a self-signed signing pair
#   sign_manifest BODY KEY CERT     print BODY followed by its "signature" line

nginx_pids=()

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_registry() {
	local dir=$1 port=$2 extra=${3:-}
	mkdir -p "$dir"
	cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: 127.0.0.1:$port
  secret: dm2-test-only
$extra
EOF
	docker-registry serve "$dir/config.yml" >>"$dir/log" 2>&1 &
	registry_pid=$!
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
		kill -0 "$registry_pid" 2>/dev/null || break
		sleep 0.1
	done
	cat "$dir/log" >&2
	return 1
}

start_nginx() {
	local tmpl=$1 prefix=$2 pid up
	mkdir -p "$prefix/www"
	for _ in 1 2 3 4 5; do
		port=$(free_port)
		sed -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$port|g" \
			"$DM2_SOURCE_DIR/tests/helpers/$tmpl" >"$prefix/nginx.conf"
		PATH=$PATH:/usr/sbin nginx -e "$prefix/error.log" -p "$prefix" -c "$prefix/nginx.conf" &
		pid=$!
		nginx_pids+=("$pid")
		up=
		for _ in $(seq 100); do
			if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		[ -n "$up" ] && return 0
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	cat "$prefix/error.log" >&2
	echo "FAIL: nginx did not start" >&2
	exit 1
}

stop_nginx() {
	local pid
	for pid in "${nginx_pids[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	nginx_pids=()
}

make_cert() {
	mkdir -p "$1"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$2" \
		-keyout "$1/key.pem" -out "$1/cert.pem" 2>/dev/null
}

# The detached CMS signature dm2 makes (pipeline/sign.c): no certificates, no attributes.
sign_manifest() {
	cat "$1"
	printf 'signature %s\n' "$(openssl cms -sign -binary -noattr -nocerts -md sha256 \
		-signer "$3" -inkey "$2" -outform DER -in "$1" | base64 -w0)"
}
