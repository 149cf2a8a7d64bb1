// Package testsupport holds what several packages' tests need: waiting for a condition and
// finding processes from /proc alone (the tests check sandboxd's view of processes against it).
// Only tests import it.
package testsupport

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Eventually fails the test unless done() turns true within limit.
func Eventually(t testing.TB, what string, limit time.Duration, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ProcessesOf answers the pids whose owner is uid (zombies included).
func ProcessesOf(uid int) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		var st syscall.Stat_t
		if err == nil && syscall.Stat("/proc/"+entry.Name(), &st) == nil && int(st.Uid) == uid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// InSession answers the pids of session sid's processes.
func InSession(sid int) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		data, _ := os.ReadFile("/proc/" + entry.Name() + "/stat")
		if err != nil || len(data) == 0 {
			continue
		}
		fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
		if len(fields) > 3 && fields[3] == strconv.Itoa(sid) {
			pids = append(pids, pid)
		}
	}
	return pids
}
