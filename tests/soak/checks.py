# SPDX-License-Identifier: LGPL-2.1-or-later
"""The soak's invariants over the fake root. Each check returns a list of problems (strings);
an empty list means the invariant holds."""

import fcntl
import gzip
import hashlib
import json
import lzma
import os
import struct
import subprocess
import tempfile
import time

TRAILER = b"~Module signature appended~\n"
FINAL = {"installed", "failed", "skipped", "waiting", "built", "not-built"}
# What a file dm2 is writing may be called while it writes it (install.c, cas.c).
TEMP_MARKS = (".tmp", "~", ".new", ".dm2-tmp", ".partial")


def read_manifest(path):
    m = {"files": {}}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#") or "=" not in line:
                continue
            k, v = line.split("=", 1)
            if k == "File":
                sha, _orig, rel = v.split(" ", 2)
                m["files"][rel] = sha
            else:
                m[k] = v
    return m


def decompress(data, name):
    if name.endswith(".xz"):
        return lzma.decompress(data)
    if name.endswith(".gz"):
        return gzip.decompress(data)
    if name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
    return data


def verify_signature(data, cert):
    """The module_signature trailer the kernel's sign-file appends, checked with openssl
    against dm2's certificate. Returns a problem or None."""
    if not data.endswith(TRAILER):
        return "not signed (no signature trailer)"
    end = len(data) - len(TRAILER)
    algo, hsh, id_type, signer_len, key_id_len, sig_len = struct.unpack(
        ">BBBBB3xI", data[end - 12:end])
    if id_type != 2 or signer_len or key_id_len:
        return f"signature is not PKCS#7 as sign-file writes it (id_type {id_type})"
    sig = data[end - 12 - sig_len:end - 12]
    content = data[:end - 12 - sig_len]
    with tempfile.TemporaryDirectory() as d:
        with open(f"{d}/sig", "wb") as f:
            f.write(sig)
        with open(f"{d}/content", "wb") as f:
            f.write(content)
        r = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER",
                            "-in", f"{d}/sig", "-content", f"{d}/content", "-certfile", cert,
                            "-nointern", "-noverify", "-out", "/dev/null"],
                           capture_output=True, text=True)
    if r.returncode != 0:
        return f"signature does not verify: {r.stderr.strip().splitlines()[:1]}"
    return None


def modinfo(path):
    r = subprocess.run(["/sbin/modinfo", path], capture_output=True, text=True)
    fields = {}
    for line in r.stdout.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields.setdefault(k.strip(), v.strip())
    return fields


def check_module(root, kver, rel, sha, cert):
    path = f"{root}/{rel}"
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return [f"{rel}: recorded in the manifest but {e.strerror}"]
    if hashlib.sha256(data).hexdigest() != sha:
        return [f"{rel}: content hash is not the one recorded in the manifest"]
    problems = []
    raw = decompress(data, rel)
    bad = verify_signature(raw, cert)
    if bad:
        problems.append(f"{rel}: {bad}")
    info = modinfo(path)
    if not info.get("signer") or not info.get("sig_hashalgo"):
        problems.append(f"{rel}: modinfo shows no signer/sig_hashalgo")
    if info.get("vermagic", "").split(" ")[0] != kver:
        problems.append(f"{rel}: vermagic '{info.get('vermagic')}' is not for kernel {kver}")
    return problems


def kernel_lock(root, kver, timeout=10.0):
    """dm2's lock on a kernel's module dir (core/lock.h): while we hold it nobody installs."""
    d = f"{root}/var/lib/dm2/locks"
    os.makedirs(d, exist_ok=True)
    fd = os.open(f"{d}/{kver}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    end = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > end:
                os.close(fd)
                return None
            time.sleep(0.05)


def check_kernel_files(root, kver, cert):
    """Under the kernel's lock: every manifest's files exist and verify; no module and no
    temporary file that no manifest records. Returns (problems, {recipe: manifest})."""
    kdir = f"{root}/lib/modules/{kver}"
    fd = kernel_lock(root, kver)
    if fd is None:
        return [f"kernel {kver}: its lock was held for more than 10 s"], {}
    try:
        manifests, problems = {}, []
        mdir = f"{kdir}/.dm2"
        for n in sorted(os.listdir(mdir)) if os.path.isdir(mdir) else []:
            if n.endswith(".manifest"):
                m = read_manifest(f"{mdir}/{n}")
                manifests[m.get("Recipe", n[:-9])] = m
            else:
                problems.append(f"{kver}: unexpected file .dm2/{n}")
        recorded = set()
        for name, m in manifests.items():
            for rel, sha in m["files"].items():
                recorded.add(rel)
                problems += check_module(root, kver, rel, sha, cert)
        for dirpath, dirs, files in os.walk(kdir):
            if dirpath == kdir:
                dirs[:] = [d for d in dirs if d not in ("build", ".dm2")]
            for n in files:
                rel = os.path.relpath(f"{dirpath}/{n}", root)
                if dirpath == kdir and (n.startswith("modules.") or n == ".soak-filler"):
                    if any(m in n for m in TEMP_MARKS):
                        problems.append(f"{rel}: temporary file left")
                    continue
                if rel not in recorded:
                    problems.append(f"{rel}: under dm2's install dirs but in no manifest")
        return problems, manifests
    finally:
        os.close(fd)


def status_json(dm2, root, recipes, user=None):
    cmd = [dm2, "--root", root, "--recipes", recipes, "status", "--json"]
    if user:
        cmd = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups"] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return None, f"dm2 status --json exited {r.returncode}: {r.stderr.strip()[:200]}"
    try:
        j = json.loads(r.stdout)
    except ValueError as e:
        return None, f"dm2 status --json printed no JSON: {e}"
    if "version" not in j:
        return None, "dm2 status --json has no version"
    return j, None


def check_status_files(rows, manifests_by_kernel):
    """status --json agrees with the manifests (which check_kernel_files matched to files)."""
    problems = []
    seen = set()
    for row in rows:
        k, n = row["kernel"], row["name"]
        if (n, k) in seen:
            problems.append(f"status: {n} on {k} listed twice")
        seen.add((n, k))
        m = manifests_by_kernel.get(k, {}).get(n)
        want = sorted(m["files"]) if m else []
        if sorted(row.get("files") or []) != want:
            problems.append(f"status: {n} on {k} lists files {row.get('files')}, "
                            f"the manifest {want}")
        if row["state"] == "installed" and not m:
            problems.append(f"status: {n} on {k} is installed but has no manifest")
        reason = row.get("reason") or ""
        if "interrupted by signal" in reason or "signal TERM" in reason:
            problems.append(f"status: {n} on {k} calls a stop a failure: {reason}")
    for k, ms in manifests_by_kernel.items():
        for n in ms:
            if (n, k) not in seen:
                problems.append(f"{k}: manifest of {n} but no row in status")
    return problems


def check_no_temp(root):
    """Idle: no job's work dir, no half-stored cache object."""
    problems = []
    work = f"{root}/var/lib/dm2/work"
    for n in os.listdir(work) if os.path.isdir(work) else []:
        # build-NAME-KVER is what `dm2 build` hands its user: it stays by design.
        if n not in (".soak-filler", "lost+found") and not n.startswith("build-"):
            problems.append(f"var/lib/dm2/work/{n}: left while no job runs")
    tmp = f"{root}/var/cache/dm2/artifacts/tmp"
    for n in os.listdir(tmp) if os.path.isdir(tmp) else []:
        problems.append(f"var/cache/dm2/artifacts/tmp/{n}: left while no job runs")
    return problems
