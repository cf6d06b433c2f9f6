#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""dm2 soak: a fake root with a running dm2d driven through random, seeded, logged steps
(kernels, recipes, dkms packages, clients, signals, a full disk, a flapping cache server),
with the invariants of issue 17 checked after every step and at quiet points. Stops at the
first violation, printing the seed, the step and a command that replays the same steps.

Usage: soak.py --minutes N [--seed S] [--steps N] [--build DIR] [--keep]
Run it through bench/soak.sh (root: it mounts tmpfs in a private mount namespace)."""

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402
from world import World, TIMEOUT_SEC, descendants  # noqa: E402

QUIET_EVERY = 30  # steps between quiet points (faults off, every job final, strict checks)
FINAL_BOUND = 240  # once faults stop, every job is final within this many seconds
CLIENT_BOUND = 200  # no client runs longer (locks wait at most DM2_LOCK_TIMEOUT_SEC=60)
MAX_CLIENTS = 4
SANITIZER = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


class Violation(Exception):
    pass


class Soak:
    def __init__(self, args, top):
        self.args = args
        self.rng = random.Random(args.seed)
        self.top = top
        self.w = World(top, args.build, args.source, self.rng, self.say)
        self.step = 0
        self.clients = []  # dicts: proc, cmd, user, verb, target, t0, signaled
        self.client_serial = 0
        self.touched = set()  # (recipe, kver) a client uninstalled or built since the last quiet
        self.faulted = False  # a full disk or cache stop since the last quiet point
        self.usage = []  # (dm2d pid, rss KiB, fds) at quiet points
        self.logf = open(f"{top}/soak.log", "a")
        # ASan's quarantine and shadow memory grow RSS without a leak (LeakSanitizer reports
        # real ones at exit, which the log check sees): a looser bound there.
        with open(f"{args.build}/dm2d", "rb") as f:
            self.sanitized = b"__asan_init" in f.read()
        self.rss_bound = 98304 if self.sanitized else 8192  # KiB

    def say(self, msg):
        line = f"[{time.strftime('%H:%M:%S')}] step {self.step}: {msg}"
        print(line, flush=True)
        self.logf.write(line + "\n")
        self.logf.flush()

    def violation(self, problems):
        raise Violation("; ".join(problems) if isinstance(problems, list) else problems)

    # ---- steps ----
    def steps(self):
        w, r = self.w, self.rng
        pending = [k for k, v in w.kernels.items() if v["pieces"]]
        full = w.complete_kernels()
        s = []
        if len(w.kernels) < 3:
            s.append((3, "kernel_add"))
        if pending:
            s.append((6, "kernel_piece"))
        if len(w.kernels) >= 2:
            s.append((1, "kernel_remove"))
        if full:
            s.append((1, "kernel_change"))
        if len(w.recipe_set) < 5:
            s.append((3, "recipe_add"))
        if w.recipe_set:
            s += [(2, "recipe_edit"), (1, "recipe_remove")]
        if len(w.dkms_set) < 2:
            s.append((1, "dkms_add"))
        if w.dkms_set:
            s += [(1, "dkms_edit"), (1, "dkms_remove")]
        if len(self.clients) < MAX_CLIENTS:
            s.append((8, "client"))
        if self.clients:
            s.append((2, "client_signal"))
        s += [(1, "dm2d_term"), (1, "dm2d_kill"), (1, "dm2d_hup"), (3, "sleep")]
        s.append((2, "disk_free") if w.full else (1, "disk_full"))
        s.append((1, "cache_stop") if w.nginx else (2, "cache_start"))
        total = sum(x for x, _ in s)
        pick = r.uniform(0, total)
        for weight, name in s:
            pick -= weight
            if pick <= 0:
                return name
        return s[-1][1]

    def kind(self):
        return self.rng.choices(["ok", "slow", "fail", "hang"], [6, 2, 1, 1])[0]

    def do(self, name):
        w, r = self.w, self.rng
        getattr(self, "s_" + name)(w, r)
        w.count(name)

    def s_kernel_add(self, w, r):
        base = w.real_kver
        names = [base] + [f"{base}-soak{i}" for i in range(1, 6)]
        free = [k for k in names if k not in w.kernels]
        kver = r.choice(free)
        w.add_kernel(kver, whole=r.random() < 0.3)
        self.say(f"kernel {kver} appears" + ("" if w.kernels[kver]["pieces"] else " (whole)"))

    def s_kernel_piece(self, w, r):
        kver = r.choice(sorted(k for k, v in w.kernels.items() if v["pieces"]))
        self.say(f"kernel {kver}: build tree gets {w.add_piece(kver)}")

    def s_kernel_remove(self, w, r):
        kver = r.choice(sorted(w.kernels))
        w.remove_kernel(kver)
        self.say(f"kernel {kver} removed")

    def s_kernel_change(self, w, r):
        kver = r.choice(sorted(w.complete_kernels()))
        w.change_kernel(kver)
        self.say(f"kernel {kver}: tree changes under the same release")

    def s_recipe_add(self, w, r):
        free = [f"soak-r{i}" for i in range(8) if f"soak-r{i}" not in w.recipe_set]
        name = r.choice(free)
        w.recipe_set[name] = {"kind": self.kind(), "version": 0,
                              "mod": "dm2s_" + name.split("-")[1]}
        w.write_recipe(name)
        self.say(f"recipe {name} added ({w.recipe_set[name]['kind']})")

    def s_recipe_edit(self, w, r):
        name = r.choice(sorted(w.recipe_set))
        rec = w.recipe_set[name]
        rec["version"] += 1
        if r.random() < 0.5:
            rec["kind"] = self.kind()
        w.write_recipe(name)
        self.say(f"recipe {name} edited: version 1.{rec['version']}, {rec['kind']}")

    def s_recipe_remove(self, w, r):
        name = r.choice(sorted(w.recipe_set))
        w.remove_recipe(name)
        self.say(f"recipe {name} removed")

    def s_dkms_add(self, w, r):
        free = [f"soakdk{i}" for i in range(4) if f"soakdk{i}" not in w.dkms_set]
        name = r.choice(free)
        w.dkms_set[name] = {"kind": r.choice(["ok", "ok", "slow", "fail"]), "version": 0,
                            "mod": "dm2k_" + name[-1]}
        w.write_dkms(name)
        self.say(f"dkms package {name} added ({w.dkms_set[name]['kind']})")

    def s_dkms_edit(self, w, r):
        name = r.choice(sorted(w.dkms_set))
        w.dkms_set[name]["version"] += 1
        w.write_dkms(name)
        self.say(f"dkms package {name} upgraded to 1.{w.dkms_set[name]['version']}")

    def s_dkms_remove(self, w, r):
        name = r.choice(sorted(w.dkms_set))
        w.remove_dkms(name)
        self.say(f"dkms package {name} removed")

    def s_client(self, w, r):
        names = sorted(w.recipe_set) + sorted(w.dkms_set) + ["soak-missing"]
        kvers = sorted(w.kernels) + [w.real_kver]
        verb = r.choice(["install", "install", "uninstall", "build", "trigger", "status",
                         "status"])
        name, kver = r.choice(names), r.choice(kvers)
        user = r.choice([None, None, "nobody"])
        args = {"install": ["install", name, "-k", kver],
                "uninstall": ["uninstall", name, "-k", kver],
                "build": ["build", name, "-k", kver],
                "trigger": ["trigger", "--wait", "--timeout", "60"],
                "status": ["status", "--json"]}[verb]
        self.start_client(verb, args, user, (name, kver))

    def start_client(self, verb, args, user, target):
        w = self.w
        self.client_serial += 1
        n = self.client_serial
        cmd = [w.dm2, "--root", w.root, "--recipes", w.recipes] + args
        if user:
            cmd = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups"] + cmd
        out = open(f"{self.top}/clients/{n}.out", "w")
        err = open(f"{self.top}/clients/{n}.err", "w")
        p = subprocess.Popen(cmd, stdout=out, stderr=err, start_new_session=True,
                             cwd="/")
        out.close()
        err.close()
        self.clients.append({"proc": p, "n": n, "verb": verb, "user": user, "target": target,
                             "t0": time.monotonic(), "signaled": None, "args": args})
        if verb in ("uninstall", "build") and not user:
            self.touched.add(target)
        self.say(f"client {n} starts: {'nobody' if user else 'root'} dm2 {' '.join(args)}")

    def s_client_signal(self, w, r):
        c = r.choice(self.clients)
        sig = r.choice([signal.SIGTERM, signal.SIGKILL, signal.SIGHUP])
        if c["proc"].poll() is None:
            c["proc"].send_signal(sig)
            c["signaled"] = sig
        self.say(f"client {c['n']} gets {sig.name}")

    def s_dm2d_term(self, w, r):
        took, problem = w.stop_dm2d()
        self.say(f"dm2d stopped by SIGTERM in {took:.1f} s")
        if problem:
            self.violation(problem)
        self.restart_dm2d()

    def s_dm2d_kill(self, w, r):
        left = w.kill_dm2d()
        self.say("dm2d and its processes killed with SIGKILL")
        if left:
            self.violation(f"processes survive SIGKILL for 10 s: {left}")
        self.restart_dm2d()

    def restart_dm2d(self):
        problem = self.w.start_dm2d()
        self.say(f"dm2d started, pid {self.w.dm2d.pid}")
        if problem:
            self.violation(problem)

    def s_dm2d_hup(self, w, r):
        w.dm2d.send_signal(signal.SIGHUP)
        self.say("dm2d gets SIGHUP")

    def s_sleep(self, w, r):
        t = r.uniform(0.3, 3)
        self.say(f"sleep {t:.1f} s")
        time.sleep(t)

    def s_disk_full(self, w, r):
        which = r.choice(["work", "modules"])
        w.fill(which)
        self.faulted = True
        self.say(f"disk full: {which}")

    def s_disk_free(self, w, r):
        w.free()
        self.say("disk freed")

    def s_cache_stop(self, w, r):
        w.stop_nginx()
        self.faulted = True
        self.say("remote cache server stopped")

    def s_cache_start(self, w, r):
        w.start_nginx()
        self.say("remote cache server started")

    # ---- checks ----
    def reap_clients(self, wait=False):
        problems = []
        for c in list(self.clients):
            p = c["proc"]
            if wait:
                try:
                    p.wait(max(1, CLIENT_BOUND - (time.monotonic() - c["t0"])))
                except subprocess.TimeoutExpired:
                    pass
            rc = p.poll()
            age = time.monotonic() - c["t0"]
            if rc is None:
                if age > CLIENT_BOUND:
                    p.kill()
                    problems.append(f"client {c['n']} (dm2 {' '.join(c['args'])}) still runs "
                                    f"after {CLIENT_BOUND} s")
                continue
            self.clients.remove(c)
            with open(f"{self.top}/clients/{c['n']}.err") as f:
                err = f.read()
            who = f"client {c['n']} ({c['user'] or 'root'} dm2 {' '.join(c['args'])})"
            self.say(f"client {c['n']} exited {rc} after {age:.1f} s"
                     + (f": {err.strip().splitlines()[-1][:160]}" if err.strip() else ""))
            if any(s in err for s in SANITIZER):
                problems.append(f"{who}: sanitizer report in its stderr")
            if rc < 0 and -rc != c["signaled"]:
                problems.append(f"{who}: died of signal {-rc}, which the soak did not send")
            elif rc > 13:
                problems.append(f"{who}: exit code {rc} is not one dm2(1) lists")
            elif c["user"] and c["verb"] in ("install", "uninstall", "trigger") and rc == 0:
                problems.append(f"{who}: an unprivileged user changed something (exit 0)")
            elif c["user"] and c["verb"] == "status" and rc != 0 and not c["signaled"]:
                problems.append(f"{who}: status failed for an unprivileged user")
        return problems

    def check_dm2d(self):
        w = self.w
        if w.dm2d.poll() is not None:
            return [f"dm2d exited {w.dm2d.returncode} by itself"]
        log = w.new_log()
        return [f"dm2d log: {line.strip()}" for line in log.splitlines()
                if any(s in line for s in SANITIZER)]

    def check_files(self):
        problems, by_kernel = [], {}
        cert = f"{self.w.root}/var/lib/dm2/keys/signing_key.x509"
        mods = f"{self.w.root}/lib/modules"
        for kver in sorted(os.listdir(mods)):
            if not os.path.isdir(f"{mods}/{kver}") or kver == "lost+found":
                continue
            p, m = checks.check_kernel_files(self.w.root, kver, cert)
            problems += p
            by_kernel[kver] = m
        return problems, by_kernel

    def check_step(self):
        problems = self.reap_clients() + self.check_dm2d()
        p, _ = self.check_files()
        problems += p
        if problems:
            self.violation(problems)

    def quiet(self, final=False):
        """Faults off; every job final within FINAL_BOUND; the strict invariants."""
        w = self.w
        self.say("quiet point: faults off, waiting for every job to be final")
        w.free()
        if not w.nginx:
            w.start_nginx()
        problems = self.reap_clients(wait=True)
        if problems:
            self.violation(problems)
        t0 = time.monotonic()
        stable_since, last = None, None
        while True:
            j, err = checks.status_json(w.dm2, w.root, w.recipes)
            if err:
                self.violation(err)
            busy = [f"{m['name']}@{m['kernel']}={m['state']}" for m in j["modules"]
                    if m["state"] not in checks.FINAL]
            # A job of a kernel that is gone has no row any more, but may still run.
            kids = descendants(w.dm2d.pid)
            if kids:
                busy.append(f"{len(kids)} process(es) of dm2d's jobs")
            snap = sorted((m["name"], m["kernel"], m["state"], m.get("when_usec")) for m in j["modules"])
            if busy or snap != last:
                stable_since, last = None, snap
            elif stable_since is None:
                stable_since = time.monotonic()
            elif time.monotonic() - stable_since >= 4:
                break
            if time.monotonic() - t0 > FINAL_BOUND:
                self.violation(f"jobs not final {FINAL_BOUND} s after the faults stopped: {busy}")
            time.sleep(0.5)
        waited = time.monotonic() - t0
        problems, by_kernel = self.check_files()
        problems += checks.check_status_files(j["modules"], by_kernel)
        problems += checks.check_no_temp(w.root)
        problems += self.check_expected(j["modules"])
        nb, err = checks.status_json(w.dm2, w.root, w.recipes, user="nobody")
        if err:
            problems.append(f"as nobody: {err}")
        elif nb["modules"] != j["modules"]:
            problems.append("status --json as nobody differs from root's")
        rss, fds = w.dm2d_usage()
        self.usage.append((w.dm2d.pid, rss, fds))
        same = [u for u in self.usage if u[0] == w.dm2d.pid]
        if fds > same[0][2] + 3:
            problems.append(f"dm2d's open files grew from {same[0][2]} to {fds}")
        if rss > same[0][1] + self.rss_bound:
            problems.append(f"dm2d's RSS grew from {same[0][1]} KiB to {rss} KiB")
        self.say(f"quiet after {waited:.0f} s: {len(j['modules'])} rows, dm2d RSS {rss} KiB, "
                 f"{fds} fds")
        if problems:
            self.violation(problems)
        self.touched.clear()
        self.faulted = False

    def check_expected(self, rows):
        """Nothing lost: every current recipe has a final row for every complete kernel, at
        its current version, installed unless it is meant to fail or a fault explains it."""
        w, problems = self.w, []
        state = {(m["name"], m["kernel"]): m for m in rows}
        want = {n: (v["kind"], f"1.{v['version']}") for n, v in w.recipe_set.items()}
        want.update({n: (v["kind"], f"1.{v['version']}") for n, v in w.dkms_set.items()})
        for kver in w.complete_kernels():
            for name, (kind, version) in want.items():
                m = state.get((name, kver))
                if (name, kver) in self.touched:
                    continue
                if m is None:
                    problems.append(f"{name} on {kver}: no job at all (lost)")
                    continue
                if m["version"] != version:
                    problems.append(f"{name} on {kver}: status has version {m['version']}, the "
                                    f"recipe {version}")
                reason = m.get("reason") or ""
                if kind in ("ok", "slow") and m["state"] != "installed":
                    excused = self.faulted and ("No space" in reason or "ownload" in reason)
                    if not excused:
                        problems.append(f"{name} on {kver} ({kind}) is {m['state']}: {reason}")
                if kind in ("fail", "hang") and m["state"] not in ("failed",):
                    problems.append(f"{name} on {kver} ({kind}) is {m['state']}, not failed")
                if kind == "hang" and m["state"] == "failed" and "time" not in reason:
                    problems.append(f"{name} on {kver} (hang) failed for '{reason}', not its "
                                    f"timeout of {TIMEOUT_SEC} s")
        return problems

    def finish(self):
        """The last stop: SIGTERM, within the bound, nothing of a job left behind."""
        took, problem = self.w.stop_dm2d()
        self.say(f"final stop: dm2d exited {took:.1f} s after SIGTERM")
        if problem:
            self.violation(problem)
        left = [p for p in __import__("world").build_uid_procs()]
        if left:
            self.violation(f"build processes left after the final stop: {left}")

    def run(self):
        a = self.args
        self.say(f"soak seed {a.seed}, {a.minutes} min, root {self.w.root}, kernel "
                 f"{self.w.real_kver}, binaries {a.build}"
                 + (" (sanitizers)" if self.sanitized else ""))
        self.w.setup()
        self.quiet_usage_start = None
        end = time.monotonic() + a.minutes * 60
        while time.monotonic() < end and (not a.steps or self.step < a.steps):
            self.step += 1
            name = self.steps()
            self.do(name)
            self.check_step()
            if self.step % QUIET_EVERY == 0:
                self.quiet()
        self.step += 1
        self.quiet(final=True)
        self.finish()

    def report(self, ok, elapsed):
        faults = sum(self.w.counts.get(k, 0) for k in
                     ("client_signal", "dm2d_term", "dm2d_kill", "dm2d_hup", "disk_full",
                      "cache_stop"))
        first, last = (self.usage[0], self.usage[-1]) if self.usage else ((0, 0, 0),) * 2
        longest = max(self.w.stops) if self.w.stops else 0
        lines = [
            f"soak {'passed' if ok else 'FAILED'}: seed {self.args.seed}, {elapsed / 60:.1f} min, "
            f"{self.step} steps, {faults} faults, {0 if ok else 1} violation(s)",
            "steps: " + ", ".join(f"{k} {v}" for k, v in sorted(self.w.counts.items())),
            f"dm2d at the first quiet point: RSS {first[1]} KiB, {first[2]} fds; at the last: "
            f"RSS {last[1]} KiB, {last[2]} fds",
            f"stops by SIGTERM: {len(self.w.stops)}, longest {longest:.1f} s "
            f"(bound {__import__('world').STOP_BOUND} s)",
        ]
        for line in lines:
            self.say(line)


def keep_evidence(soak):
    """The tmpfs mounts go with the mount namespace: list what they hold first."""
    with open(f"{soak.top}/evidence.txt", "w") as f:
        subprocess.run(["ls", "-laR", f"{soak.w.root}/var/lib/dm2/work", f"{soak.w.root}/lib/modules"],
                       stdout=f, stderr=subprocess.STDOUT)
        subprocess.run(["ps", "-eo", "pid,ppid,pgid,uid,etime,args", "--forest"], stdout=f)


def cleanup(soak):
    w = soak.w
    for c in soak.clients:
        if c["proc"].poll() is None:
            c["proc"].kill()
            c["proc"].wait()
    if w.dm2d and w.dm2d.poll() is None:
        w.kill_dm2d()
    w.stop_nginx()
    for d in (f"{w.root}/var/lib/dm2/work", f"{w.root}/lib/modules"):
        subprocess.run(["umount", "-l", d], stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser(description="dm2 soak under faults (issue 17)")
    ap.add_argument("--minutes", type=float, default=2)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--steps", type=int, default=0, help="stop after this many steps")
    ap.add_argument("--build", default=None, help="build dir with dm2, dm2d, dm2-engine")
    ap.add_argument("--keep", action="store_true", help="keep the fake root on failure")
    args = ap.parse_args()
    args.source = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args.build = os.path.abspath(args.build or f"{args.source}/build")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1 << 31)
    if os.geteuid() != 0:
        sys.exit("soak: needs root (tmpfs mounts in a private mount namespace, setpriv)")
    if os.environ.get("DM2_SOAK_NS") != "1":
        os.environ["DM2_SOAK_NS"] = "1"
        os.execvp("unshare", ["unshare", "-m", "--propagation", "private", sys.executable]
                  + sys.argv)
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    os.environ["DM2_LOCK_TIMEOUT_SEC"] = "60"
    top = tempfile.mkdtemp(prefix="dm2-soak.", dir="/tmp")
    soak = Soak(args, top)
    t0 = time.monotonic()
    ok = False
    try:
        soak.run()
        ok = True
    except Violation as v:
        soak.say(f"VIOLATION at step {soak.step}, seed {args.seed}: {v}")
        soak.say(f"replay the same steps: bench/soak.sh --seed {args.seed} --steps "
                 f"{soak.step} --minutes {args.minutes} --keep")
    finally:
        if not ok and args.keep:
            keep_evidence(soak)
        cleanup(soak)
        soak.report(ok, time.monotonic() - t0)
        if ok or not args.keep:
            shutil.rmtree(top, ignore_errors=True)
        else:
            print(f"kept {top} (dm2d.log, soak.log, clients/)", flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
