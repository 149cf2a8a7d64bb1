// Package reaper owns wait4(-1) in sandboxd.
//
// As PID 1, sandboxd inherits every orphan of the sandbox and must reap it, or zombies pile up
// until the pids limit is full. A reaper that calls wait4(-1) would race any other wait for
// sandboxd's own commands (exec.Cmd.Wait would find its child already reaped), so there is one
// waiter: this package. It starts sandboxd's children itself (Spawn) and registers each pid
// before it can be reaped, then hands the exit status to whoever waits for that child.
//
// When sandboxd is not PID 1 (go test), it makes itself a child subreaper, so orphans come to it
// the same way and the same code runs.
package reaper

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

const prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER

var (
	// mu is held by Spawn from fork to registration, and by reap around its wait4 calls: a child
	// that exits at once stays a zombie until it is registered, so its status is never lost.
	mu      sync.Mutex
	waiters = map[int]chan syscall.WaitStatus{}

	startOnce sync.Once
	startErr  error
)

// Start makes this process the reaper of its descendants (PID 1 already is) and reaps from now
// on. Later calls do nothing.
func Start() error {
	startOnce.Do(func() {
		if os.Getpid() != 1 {
			if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
				startErr = fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", errno)
				return
			}
		}
		// One signal may stand for many exits; a pending one in the buffer is enough, since
		// each reap collects every child that has exited.
		sigchld := make(chan os.Signal, 1)
		signal.Notify(sigchld, syscall.SIGCHLD)
		go func() {
			for range sigchld {
				reap()
			}
		}()
		reap() // children that exited before the handler was installed
	})
	return startErr
}

// reap collects every child that has exited, without blocking.
func reap() {
	mu.Lock()
	defer mu.Unlock()
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return // ECHILD: no children; 0: none has exited
		}
		if waiter, ok := waiters[pid]; ok {
			delete(waiters, pid)
			waiter <- status // buffered: never blocks
		}
		// Anyone else was an orphan: reaping it is all there is to do.
	}
}

// Spawn starts a process with syscall.ForkExec and answers its pid and a channel that receives
// its exit status once (never closed). Start must have been called.
func Spawn(path string, argv []string, attr *syscall.ProcAttr) (int, <-chan syscall.WaitStatus, error) {
	mu.Lock()
	defer mu.Unlock()
	pid, err := syscall.ForkExec(path, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	exited := make(chan syscall.WaitStatus, 1)
	waiters[pid] = exited
	return pid, exited, nil
}
