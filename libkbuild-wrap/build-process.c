/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The processes of one build. The caller forks a guardian, which starts a new session (so
 * its pid is the process group of everything the build spawns) and forks the worker that
 * execs make. The guardian only waits: it passes the worker's exit status on, and when
 * the caller dies (parent-death signal) or it is told to stop (SIGTERM, SIGINT, SIGHUP)
 * it kills the whole group. make's own children ($(shell ...), compilers) are not make's
 * business to clean up when make is killed, so nothing short of killing the group ends a
 * build for good.
 *
 * Builds in progress are recorded in a small static table that kbw_build_cancel_all()
 * reads from a signal handler.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "kbw-internal.h"

/* Slot values: 0 free, SLOT_STARTING reserved before fork, SLOT_CANCELLED cancelled while
 * starting, > 0 the guardian's pid (= the build's process group). A slot is released
 * before the guardian is reaped, so its pid cannot be reused while a handler may read it.
 */
#define N_SLOTS 32
#define SLOT_STARTING (-1)
#define SLOT_CANCELLED (-2)
static int slots[N_SLOTS];
static int slot_cancelled[N_SLOTS];

static void kill_group(pid_t pid)
{
	/* Before the guardian's setsid() the group does not exist yet, after its death
	 * the group may still: both calls, and the group once more for a worker forked
	 * between the two. */
	(void) kill(-pid, SIGKILL);
	(void) kill(pid, SIGKILL);
	(void) kill(-pid, SIGKILL);
}

KBW_EXPORT void kbw_build_cancel_all(void)
{
	int saved = errno;

	for (size_t i = 0; i < N_SLOTS; i++) {
		int v = __atomic_load_n(&slots[i], __ATOMIC_SEQ_CST);

		if (v > 0) {
			__atomic_store_n(&slot_cancelled[i], 1, __ATOMIC_SEQ_CST);
			kill_group(v);
		} else if (v == SLOT_STARTING) {
			int expected = SLOT_STARTING;

			(void) __atomic_compare_exchange_n(
				&slots[i], &expected, SLOT_CANCELLED, false,
				__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
		}
	}
	errno = saved;
}

static int slot_reserve(void)
{
	for (int i = 0; i < N_SLOTS; i++) {
		int expected = 0;

		if (__atomic_compare_exchange_n(&slots[i], &expected, SLOT_STARTING,
						false, __ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST)) {
			__atomic_store_n(&slot_cancelled[i], 0, __ATOMIC_SEQ_CST);
			return i;
		}
	}
	return -1; /* more builds at once than slots: these cannot be cancelled */
}

static void slot_release(int i)
{
	if (i >= 0)
		__atomic_store_n(&slots[i], 0, __ATOMIC_SEQ_CST);
}

/* Die with the parent. The setting is cleared whenever the credentials change (setuid, a
 * new user namespace), so the worker arms it again right before execve(). */
int kbw_process_die_with_parent(pid_t parent, int sig)
{
	if (prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) < 0)
		return -errno;
	/* The parent may have died before the prctl(): then nobody sends the signal. */
	if (getppid() != parent)
		return -ESRCH;
	return 0;
}

/* Worker: default signal handling for make, whatever the caller had blocked or ignored
 * (ignored signals survive execve()). */
static void reset_signals(void)
{
	struct sigaction sa = {.sa_handler = SIG_DFL};
	sigset_t none;

	for (int sig = 1; sig < _NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void) sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	(void) sigprocmask(SIG_SETMASK, &none, NULL);
}

static _Noreturn void run_guardian(pid_t caller, int report_fd,
				   void (*run)(const void *arg), const void *arg)
{
	static const int watched[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP};
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	struct rlimit no_core = {0, 0};
	sigset_t set;
	pid_t me, worker;
	int status, null_fd;

	/* Blocked and collected with sigwaitinfo(); not ignored, or they would be lost.
	 */
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(watched) / sizeof(watched[0]); i++) {
		sigaddset(&set, watched[i]);
		(void) sigaction(watched[i], &dfl, NULL);
	}
	(void) sigprocmask(SIG_BLOCK, &set, NULL);
	if (kbw_process_die_with_parent(caller, SIGTERM) < 0)
		_exit(127);
	if (setsid() < 0) {
		dprintf(report_fd, "error setsid() failed: %s\n", strerror(errno));
		_exit(127);
	}
	me = getpid();
	worker = fork();
	if (worker < 0) {
		dprintf(report_fd, "error fork() failed: %s\n", strerror(errno));
		_exit(127);
	}
	if (worker == 0) {
		reset_signals();
		if (kbw_process_die_with_parent(me, SIGKILL) < 0)
			_exit(127);
		run(arg);
		_exit(127); /* run() execs or exits */
	}
	/* The guardian holds nothing: the report pipe must see EOF when the worker
	 * execs, and whoever reads the caller's output must not wait for the build. */
	(void) close_range(3, ~0U, 0);
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null_fd >= 0) {
		for (int fd = 0; fd < 3; fd++)
			(void) dup2(null_fd, fd);
		if (null_fd > 2)
			(void) close(null_fd);
	}

	for (;;) {
		siginfo_t si;
		pid_t w;

		if (sigwaitinfo(&set, &si) < 0)
			continue;
		if (si.si_signo != SIGCHLD) {
			/* The caller died or wants the build gone: the group, us
			 * included. */
			(void) kill(0, SIGKILL);
			_exit(128 + SIGKILL);
		}
		w = waitpid(worker, &status, WNOHANG);
		if (w == worker)
			break;
		if (w < 0 && errno == ECHILD)
			_exit(127);
	}
	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status));
	/* Killed: end the same way, so the caller sees the signal, without a core file.
	 */
	(void) setrlimit(RLIMIT_CORE, &no_core);
	(void) sigaction(WTERMSIG(status), &dfl, NULL);
	sigemptyset(&set);
	sigaddset(&set, WTERMSIG(status));
	(void) sigprocmask(SIG_UNBLOCK, &set, NULL);
	(void) raise(WTERMSIG(status));
	_exit(128 + WTERMSIG(status));
}

int kbw_process_start(void (*run)(const void *arg), const void *arg, int report_fd,
		      struct kbw_process *ret)
{
	pid_t caller = getpid(), pid;
	int slot, expected = SLOT_STARTING;

	slot = slot_reserve();
	if (slot >= 0 &&
	    __atomic_load_n(&slots[slot], __ATOMIC_SEQ_CST) == SLOT_CANCELLED) {
		*ret = (struct kbw_process){.pid = 0, .slot = slot, .cancelled = true};
		return 0;
	}
	pid = fork();
	if (pid < 0) {
		int r = -errno;

		slot_release(slot);
		return r;
	}
	if (pid == 0)
		run_guardian(caller, report_fd, run, arg);

	*ret = (struct kbw_process){.pid = pid, .slot = slot};
	if (slot >= 0 &&
	    !__atomic_compare_exchange_n(&slots[slot], &expected, pid, false,
					 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
		/* Cancelled between the reservation and now. */
		__atomic_store_n(&slots[slot], pid, __ATOMIC_SEQ_CST);
		ret->cancelled = true;
		kill_group(pid);
	}
	return 0;
}

void kbw_process_kill(const struct kbw_process *p)
{
	if (p->pid > 0)
		kill_group(p->pid);
}

int kbw_process_wait(struct kbw_process *p, uint64_t timeout_usec, int *ret_status,
		     bool *ret_timed_out, struct kbw_jobs *jobs)
{
	_cleanup_close_ int pidfd = -EBADF;
	uint64_t start = now_mono_usec();
	bool timed_out = false;
	int status = 0;

	if (p->pid <= 0) {
		/* Cancelled before it started. */
		slot_release(p->slot);
		p->slot = -1;
		*ret_status = W_EXITCODE(0, SIGKILL);
		*ret_timed_out = false;
		return 0;
	}
	pidfd = (int) syscall(SYS_pidfd_open, p->pid, 0);
	for (;;) {
		siginfo_t si = {};
		uint64_t elapsed;
		int ms = -1;

		/* WNOWAIT: the guardian stays a zombie, its pid and group reserved, until
		 * the slot is released and stragglers are killed. */
		if (waitid(P_PID, (id_t) p->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (si.si_pid == p->pid)
			break;
		elapsed = now_mono_usec() - start;
		if (timeout_usec > 0 && !timed_out) {
			if (elapsed >= timeout_usec) {
				timed_out = true;
				kill_group(p->pid);
				continue;
			}
			ms = (int) MIN((timeout_usec - elapsed + 999) / 1000, 1000);
		}
		if (jobs) {
			/* make blocks on its pipe: lend tokens often enough to keep it fed */
			kbw_jobs_tick(jobs);
			ms = ms < 0 ? 10 : MIN(ms, 10);
		}
		if (pidfd >= 0) {
			struct pollfd pfd = {.fd = pidfd, .events = POLLIN};

			(void) poll(&pfd, 1, ms);
		} else {
			struct timespec ts = {0, 20 * 1000 * 1000};

			(void) nanosleep(&ts, NULL);
		}
	}
	/* Whatever the build left running in its group goes with it. */
	(void) kill(-p->pid, SIGKILL);
	if (p->slot >= 0) {
		p->cancelled = p->cancelled || __atomic_load_n(&slot_cancelled[p->slot],
							       __ATOMIC_SEQ_CST);
		slot_release(p->slot);
		p->slot = -1;
	}
	for (;;) {
		if (waitpid(p->pid, &status, 0) == p->pid)
			break;
		if (errno != EINTR)
			return -errno;
	}
	p->pid = 0;
	*ret_status = status;
	*ret_timed_out = timed_out;
	return 0;
}
