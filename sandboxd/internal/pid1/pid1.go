// Package pid1 does what the first process of a container must beyond reaping (package reaper):
// survive the signals sandbox code sends it, and end the sandbox's processes on SIGTERM.
package pid1

import (
	"os"
	"os/signal"
	"syscall"
	"time"

	"vibebox.dev/sandboxd/internal/proc"
)

// Dropped are the signals sandboxd receives and drops. The kernel delivers to a namespace's PID 1
// only the signals it handles, and the Go runtime handles most of them at start: from another
// process, each of these would end it (SIGHUP, SIGINT...) or crash it (SIGQUIT, SIGILL, SIGSEGV
// sent by kill...). Taking them through os/signal makes the runtime hand them over instead.
// Ignoring them (SIG_IGN) would do as well for sandboxd, but ignored dispositions survive execve:
// every command would start with SIGINT, SIGPIPE... ignored. Handled ones are reset to the
// default in the child (syscall.ForkExec), so commands get what `docker exec` gives them.
var Dropped = []os.Signal{
	syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGABRT,
	syscall.SIGBUS, syscall.SIGFPE, syscall.SIGUSR1, syscall.SIGSEGV, syscall.SIGUSR2, syscall.SIGPIPE,
	syscall.SIGALRM, syscall.SIGSTKFLT, syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGVTALRM, syscall.SIGIO,
	syscall.SIGPWR, syscall.SIGSYS,
}

// HandleSignals drops the Dropped signals from now on and answers a channel that receives
// SIGTERM (docker stop). SIGCHLD is the reaper's; SIGKILL and SIGSTOP cannot reach PID 1 from
// inside its namespace.
func HandleSignals() <-chan os.Signal {
	drop := make(chan os.Signal, 8)
	signal.Notify(drop, Dropped...)
	go func() {
		for range drop {
		}
	}()
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	return term
}

// Shutdown ends every other process of the sandbox: SIGTERM, up to `grace` for them to go, then
// SIGKILL. As PID 1, kill(-1) reaches every process of the namespace but sandboxd in one call;
// otherwise (tests) only sandboxd's descendants are signalled, one by one.
func Shutdown(grace time.Duration) {
	if os.Getpid() == 1 {
		syscall.Kill(-1, syscall.SIGTERM)
		waitFor(func() bool { return len(others()) == 0 }, grace)
		syscall.Kill(-1, syscall.SIGKILL)
		return
	}
	signalAll(descendants(), syscall.SIGTERM)
	waitFor(func() bool { return len(descendants()) == 0 }, grace)
	for range 5 {
		left := descendants()
		if len(left) == 0 {
			return
		}
		signalAll(left, syscall.SIGKILL)
		time.Sleep(20 * time.Millisecond)
	}
}

func signalAll(pids []int, sig syscall.Signal) {
	for _, pid := range pids {
		syscall.Kill(pid, sig)
	}
}

// others answers every process but sandboxd (the reaper reaps the ones that exit).
func others() []int {
	var pids []int
	for _, pid := range proc.Pids() {
		if pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

func descendants() []int {
	return proc.Descendants(proc.Table(map[int]bool{}), os.Getpid())
}

func waitFor(done func() bool, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for !done() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}
