# SPDX-License-Identifier: LGPL-2.1-or-later
"""The fake machine the soak drives: a root with kernels, recipes, dkms packages, a remote
cache (nginx) and a dm2d, and the actions that change them. soak.py picks the actions."""

import os
import shutil
import signal
import socket
import subprocess
import time

BUILD_UIDS = [62000, 62063]  # UidRange= of the soak's dm2d: claim_uid_range() picks a slot
STOP_BOUND = 25  # dm2d exits at most this long after SIGTERM (dm2d(8))
TIMEOUT_SEC = 30  # [Build] TimeoutSec=: the hanging recipe fails after it

KINDS = {
    # kind: (Kbuild prefix, extra C line)
    "ok": ("", ""),
    "slow": ("$(shell sleep 1)\n", ""),  # kbuild reads Kbuild about 3 times
    "fail": ("", "this is not C;\n"),
    "hang": ("$(shell sleep 3600)\n", ""),
}

C_TEMPLATE = """// SPDX-License-Identifier: GPL-2.0
/* dm2 soak test module, edit {edit}. */
#include <linux/module.h>

static int __init {mod}_init(void)
{{
	return 0;
}}

static void __exit {mod}_exit(void)
{{
}}

module_init({mod}_init);
module_exit({mod}_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("dm2 soak module");
{extra}"""


def write_atomic(path, text):
    tmp = f"{path}.soak-tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def write_module(dirpath, mod, kind, edit):
    os.makedirs(dirpath, exist_ok=True)
    prefix, extra = KINDS[kind]
    write_atomic(f"{dirpath}/{mod}.c", C_TEMPLATE.format(mod=mod, edit=edit, extra=extra))
    write_atomic(f"{dirpath}/Kbuild", f"{prefix}obj-m := {mod}.o\n")
    for root, dirs, files in os.walk(dirpath):
        for n in dirs + files:
            os.chmod(os.path.join(root, n), 0o755 if n in dirs else 0o644)
    os.chmod(dirpath, 0o755)


def claim_uid_range():
    """UidRange= must be this soak's alone (two roots sharing one could hand a uid to two
    builds, and the check for build processes left over would see the other soak's):
    one of 16 slots of 64 uids from 62000, held by a lock for the soak's life."""
    import fcntl
    for slot in range(16):
        fd = os.open(f"/run/dm2-soak-uids.{slot}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        BUILD_UIDS[:] = [62000 + 64 * slot, 62000 + 64 * slot + 63]
        return fd
    raise SystemExit("soak: 16 soaks already run on this machine")


def descendants(pid):
    """pid's descendants, as (pid, starttime) pairs, read through /proc."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tids:
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except OSError:
                continue
            for k in kids:
                st = starttime(k)
                if st is not None:
                    out.append((k, st))
                    todo.append(k)
    return out


def starttime(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def alive(procs):
    return [(p, st) for p, st in procs if starttime(p) == st]


def build_uid_procs():
    found = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        uid = int(line.split()[1])
                        if BUILD_UIDS[0] <= uid <= BUILD_UIDS[1]:
                            found.append(int(p))
                        break
        except OSError:
            continue
    return found


def unit_wrap(src_dir):
    """setpriv arguments that give dm2d no more capabilities than units/dm2d.service
    (CapabilityBoundingSet=) and no_new_privs (NoNewPrivileges=), as daemon-lib.sh does."""
    if os.geteuid() != 0 or os.environ.get("DM2D_FULL_CAPS") or not shutil.which("setpriv"):
        return []
    with open(f"{src_dir}/units/dm2d.service") as f:
        caps = [line.split("=", 1)[1].split() for line in f
                if line.startswith("CapabilityBoundingSet=")]
    if not caps:
        raise RuntimeError("units/dm2d.service has no CapabilityBoundingSet=")
    wanted = ",".join("+" + c.removeprefix("CAP_").lower() for c in caps[0])
    return ["setpriv", f"--bounding-set=-all,{wanted}", "--no-new-privs"]


class World:
    def __init__(self, top, build_dir, src_dir, rng, log):
        self.top, self.rng, self.log = top, rng, log
        self.dm2 = f"{build_dir}/dm2"
        self.dm2d_bin = f"{build_dir}/dm2d"
        self.src_dir = src_dir
        self.root = f"{top}/root"
        self.recipes = f"{top}/recipes"
        self.trees = f"{top}/trees"
        self.real_kver, self.real_tree = self._real_kernel()
        self.kernels = {}  # kver -> {"tree": dir, "pieces": [remaining], "gen": n}
        self.recipe_set = {}  # name -> {"kind", "version", "mod"}
        self.dkms_set = {}  # name -> {"kind", "version", "mod", "dir"}
        self.serial = 0
        self.dm2d = None
        self.dm2d_started = None
        self.nginx = None
        self.port = None
        self.full = None  # the tmpfs a filler file fills, or None
        self.counts = {}
        self.stops = []  # seconds from SIGTERM to exit
        self.log_offset = 0

    def count(self, what):
        self.counts[what] = self.counts.get(what, 0) + 1

    def _real_kernel(self):
        want = os.environ.get("REAL_KVER")
        for k in sorted(os.listdir("/lib/modules")):
            b = f"/lib/modules/{k}/build"
            if os.path.isfile(f"{b}/.config") and (not want or want == k):
                return k, os.path.realpath(b)
        raise SystemExit("soak: no kernel build tree in /lib/modules (install linux-headers)")

    # ---- setup ----
    def setup(self):
        self.uid_lock = claim_uid_range()
        for d in (f"{self.root}/etc/dm2", f"{self.root}/lib/modules", self.recipes, self.trees,
                  f"{self.root}/usr/src", f"{self.root}/var/lib/dm2/work", f"{self.top}/clients"):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.top, 0o755)
        # A tmpfs each over the work dir and the module dirs (we are in a private mount
        # namespace): a filler file makes either full for a while.
        for d, size in ((f"{self.root}/var/lib/dm2/work", "96m"), (f"{self.root}/lib/modules", "48m")):
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=755", "tmpfs", d],
                           check=True)
        self.start_nginx()
        with open(f"{self.root}/etc/dm2/dm2d.conf", "w") as f:
            f.write("[Daemon]\nSettleSec=1\nJobs=2\n\n"
                    f"[Build]\nTimeoutSec={TIMEOUT_SEC}\nUidRange={BUILD_UIDS[0]}-{BUILD_UIDS[1]}\n\n"
                    f"[Cache]\nRemote=http://127.0.0.1:{self.port}/soak/\nPush=yes\n\n"
                    "[Fetch]\nConnectTimeoutSec=2\nStallTimeoutSec=5\nRetries=0\n")
        self.add_kernel(self.real_kver, whole=True)
        self.start_dm2d()

    def start_nginx(self):
        prefix = f"{self.top}/nginx"
        os.makedirs(f"{prefix}/www", exist_ok=True)
        for _ in range(20):
            if self.port is None:
                s = socket.socket()
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
                s.close()
            with open(f"{self.src_dir}/tests/helpers/nginx-dav.conf") as f:
                conf = f.read().replace("@PREFIX@", prefix).replace("@PORT@", str(self.port))
            with open(f"{prefix}/nginx.conf", "w") as f:
                f.write(conf)
            p = subprocess.Popen(["/usr/sbin/nginx", "-e", f"{prefix}/error.log", "-p", prefix,
                                  "-c", f"{prefix}/nginx.conf"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                    self.nginx = p
                    return
                except OSError:
                    if p.poll() is not None:
                        break
                    time.sleep(0.05)
            p.kill()
            p.wait()
            time.sleep(0.5)  # the port is kept: dm2d.conf names it
        raise SystemExit(f"soak: nginx did not start on port {self.port}")

    def stop_nginx(self):
        if self.nginx:
            self.nginx.terminate()
            self.nginx.wait()
            self.nginx = None

    # ---- kernels ----
    def tree_pieces(self):
        return ["dirs", "include", "top", "symvers", "generated", "utsrelease"]

    def add_kernel(self, kver, whole=False):
        self.serial += 1
        tree = f"{self.trees}/{kver}.{self.serial}"
        os.makedirs(tree)
        os.makedirs(f"{self.root}/lib/modules/{kver}", exist_ok=True)
        os.symlink(tree, f"{self.root}/lib/modules/{kver}/build")
        k = {"tree": tree, "pieces": self.tree_pieces(), "gen": 0}
        self.kernels[kver] = k
        while whole and k["pieces"]:
            self.add_piece(kver)

    def add_piece(self, kver):
        """One more part of the build tree, in the order dpkg may unpack them."""
        k = self.kernels[kver]
        piece, t, r = k["pieces"].pop(0), k["tree"], self.real_tree
        if piece == "dirs":
            for e in ("arch", "scripts", "tools"):
                os.symlink(f"{r}/{e}", f"{t}/{e}")
        elif piece == "include":
            os.makedirs(f"{t}/include/generated")
            for e in os.listdir(f"{r}/include"):
                if e != "generated":
                    os.symlink(f"{r}/include/{e}", f"{t}/include/{e}")
        elif piece == "top":
            for e in (".config", ".kernelvariables", "Makefile"):
                shutil.copy(f"{r}/{e}", f"{t}/{e}")
        elif piece == "symvers":
            shutil.copy(f"{r}/Module.symvers", f"{t}/Module.symvers")
        elif piece == "generated":
            for e in os.listdir(f"{r}/include/generated"):
                if e != "utsrelease.h":
                    os.symlink(f"{r}/include/generated/{e}", f"{t}/include/generated/{e}")
        elif piece == "utsrelease":
            write_atomic(f"{t}/include/generated/utsrelease.h", f'#define UTS_RELEASE "{kver}"\n')
        return piece

    def change_kernel(self, kver):
        """The tree changes under the same release (a rebuilt linux-headers package)."""
        k = self.kernels[kver]
        k["gen"] += 1
        with open(f"{self.real_tree}/.config") as f:
            text = f.read()
        write_atomic(f"{k['tree']}/.config", text + f"# soak change {k['gen']}\n")

    def remove_kernel(self, kver):
        k = self.kernels.pop(kver)
        shutil.rmtree(f"{self.root}/lib/modules/{kver}", ignore_errors=True)
        shutil.rmtree(k["tree"], ignore_errors=True)

    def complete_kernels(self):
        return [k for k, v in self.kernels.items() if not v["pieces"]]

    # ---- recipes and dkms packages ----
    def write_recipe(self, name):
        r = self.recipe_set[name]
        write_module(f"{self.recipes}/{name}-src", r["mod"], r["kind"], r["version"])
        write_atomic(f"{self.recipes}/{name}.recipe",
                     f"[Recipe]\nName={name}\nDescription=soak {r['kind']} module\n"
                     f"License=GPL-2.0-only\n\n[Source]\nVersion=1.{r['version']}\n"
                     f"Path={name}-src\n\n[Build]\nModules={r['mod']}\n")
        os.chmod(f"{self.recipes}/{name}.recipe", 0o644)

    def remove_recipe(self, name):
        del self.recipe_set[name]
        os.unlink(f"{self.recipes}/{name}.recipe")
        shutil.rmtree(f"{self.recipes}/{name}-src", ignore_errors=True)

    def write_dkms(self, name):
        d = self.dkms_set[name]
        if d.get("dir"):
            shutil.rmtree(d["dir"], ignore_errors=True)  # dpkg replaces the version's dir
        d["dir"] = f"{self.root}/usr/src/{name}-1.{d['version']}"
        write_module(d["dir"], d["mod"], d["kind"], d["version"])
        write_atomic(f"{d['dir']}/dkms.conf",
                     f'PACKAGE_NAME="{name}"\nPACKAGE_VERSION="1.{d["version"]}"\n'
                     f'BUILT_MODULE_NAME[0]="{d["mod"]}"\n'
                     'DEST_MODULE_LOCATION[0]="/updates/dkms"\nAUTOINSTALL="yes"\n')
        os.chmod(f"{d['dir']}/dkms.conf", 0o644)

    def remove_dkms(self, name):
        d = self.dkms_set.pop(name)
        shutil.rmtree(d["dir"], ignore_errors=True)

    # ---- dm2d ----
    def start_dm2d(self):
        log = open(f"{self.top}/dm2d.log", "ab")
        self.dm2d = subprocess.Popen(unit_wrap(self.src_dir) +
                                     [self.dm2d_bin, "--root", self.root, "--recipes", self.recipes,
                                      "--foreground", "-v"], stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        self.dm2d_started = time.monotonic()
        sock = f"{self.root}/run/dm2/control"
        for _ in range(200):
            if self.dm2d.poll() is not None:
                return f"dm2d exited {self.dm2d.returncode} at start"
            if os.path.exists(sock):
                try:
                    s = socket.socket(socket.AF_UNIX)
                    s.connect(sock)
                    s.close()
                    return None
                except OSError:
                    pass
            time.sleep(0.1)
        return "dm2d did not open its control socket within 20 s"

    def stop_dm2d(self):
        """SIGTERM; returns (seconds, problem or None). Checks the stop bound and that no
        process of a job outlives dm2d."""
        procs = descendants(self.dm2d.pid)
        t0 = time.monotonic()
        self.dm2d.send_signal(signal.SIGTERM)
        try:
            rc = self.dm2d.wait(STOP_BOUND + 10)
        except subprocess.TimeoutExpired:
            self.dm2d.kill()
            self.dm2d.wait()
            self.dm2d = None
            return STOP_BOUND + 10, f"dm2d still ran {STOP_BOUND + 10} s after SIGTERM"
        took = time.monotonic() - t0
        self.stops.append(took)
        self.dm2d = None
        if took > STOP_BOUND:
            return took, f"dm2d took {took:.1f} s to stop, more than {STOP_BOUND} s"
        if rc != 0:
            return took, f"dm2d exited {rc} after SIGTERM"
        # A sandbox's last processes are reaped by the kernel just after its init dies.
        deadline = time.monotonic() + 3
        while alive(procs) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = alive(procs)
        if left:
            return took, f"processes of dm2d's jobs left after its stop: {left}"
        return took, None

    def kill_dm2d(self):
        """kill -9 of dm2d and, as systemd does for the unit's cgroup, of all its processes."""
        procs = descendants(self.dm2d.pid)
        self.dm2d.kill()
        self.dm2d.wait()
        self.dm2d = None
        for p, st in procs:
            if starttime(p) == st:
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        deadline = time.monotonic() + 10
        while alive(procs) and time.monotonic() < deadline:
            time.sleep(0.1)
        return alive(procs)

    def dm2d_usage(self):
        p = self.dm2d.pid
        rss = 0
        with open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        return rss, len(os.listdir(f"/proc/{p}/fd"))

    def new_log(self):
        with open(f"{self.top}/dm2d.log", "rb") as f:
            f.seek(self.log_offset)
            data = f.read()
        self.log_offset += len(data)
        return data.decode(errors="replace")

    # ---- disk ----
    def fill(self, which):
        d = {"work": f"{self.root}/var/lib/dm2/work", "modules": f"{self.root}/lib/modules"}[which]
        self.full = f"{d}/.soak-filler"
        try:
            with open(self.full, "wb") as f:
                while True:
                    f.write(b"\0" * (1 << 20))
        except OSError:
            pass

    def free(self):
        if self.full:
            os.unlink(self.full)
            self.full = None
