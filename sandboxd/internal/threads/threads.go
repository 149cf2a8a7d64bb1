// Package threads keeps sandboxd able to serve when no new OS thread can start.
//
// A sandbox's pids limit counts threads as well as processes. When sandbox code fills it (a
// fork bomb), the kernel refuses every clone, and a Go program that then needs one more thread
// dies ("runtime: failed to create new OS thread"). sandboxd is PID 1: the sandbox would die
// with it, and the kill that should end the bomb would never be served. So sandboxd creates its
// threads while it still can (Reserve), lets only a few goroutines sit in blocking system calls
// at once (Blocking), and runs with a small GOMAXPROCS (main.go): the runtime then never needs
// more threads than the reserve holds.
package threads

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"sync"
)

// slots bounds the goroutines inside Blocking; Setup resizes it at start.
var slots = make(chan struct{}, 4)

// Setup reserves `reserve` threads and lets `blocking` goroutines into Blocking at once. Call it
// once, first thing, before anything uses Blocking.
func Setup(reserve, blocking int) {
	slots = make(chan struct{}, max(1, blocking))
	Reserve(reserve)
}

// Reserve makes the runtime create n OS threads now. n goroutines each lock a thread and wait
// until all of them hold one, so the runtime must start n distinct threads; they then unlock and
// return, and their threads stay idle in the runtime's pool (Go never ends an idle thread, only
// one whose goroutine exits while locked), ready for when the kernel would refuse a new one.
func Reserve(n int) {
	var locked, done sync.WaitGroup
	release := make(chan struct{})
	locked.Add(n)
	done.Add(n)
	for range n {
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			locked.Done()
			<-release
			runtime.UnlockOSThread() // before returning: an exit while locked would end the thread
		}()
	}
	locked.Wait()
	close(release)
	done.Wait()
}

// Blocking runs f, a stretch of blocking system calls (a fork, a /proc scan, file reads), while
// at most Setup's `blocking` such stretches run at once: each holds a thread for its duration,
// and together they must stay below the reserve.
func Blocking(f func()) {
	s := slots
	s <- struct{}{}
	defer func() { <-s }()
	f()
}

// Count answers how many threads this process has (the kernel's count), 0 if unknown.
func Count() int {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if value, ok := bytes.CutPrefix(line, []byte("Threads:")); ok {
			n, _ := strconv.Atoi(string(bytes.TrimSpace(value)))
			return n
		}
	}
	return 0
}
