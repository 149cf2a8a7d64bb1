package reaper

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if err := Start(); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

func spawn(t *testing.T, out *os.File, argv ...string) <-chan syscall.WaitStatus {
	t.Helper()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	files := []uintptr{null.Fd(), null.Fd(), null.Fd()}
	if out != nil {
		files[1] = out.Fd()
	}
	attr := &syscall.ProcAttr{Env: []string{"PATH=/usr/bin:/bin"}, Files: files}
	_, exited, err := Spawn(argv[0], argv, attr)
	if err != nil {
		t.Fatal(err)
	}
	return exited
}

func status(t *testing.T, exited <-chan syscall.WaitStatus) syscall.WaitStatus {
	t.Helper()
	select {
	case ws := <-exited:
		return ws
	case <-time.After(10 * time.Second):
		t.Fatal("no exit status within 10 s")
	}
	panic("unreachable")
}

func TestSpawnHandsTheExitStatusToItsWaiter(t *testing.T) {
	// Many children that exit at once: none of their statuses may be lost to the reaper.
	var all []<-chan syscall.WaitStatus
	for i := range 20 {
		all = append(all, spawn(t, nil, "/bin/sh", "-c", "exit "+strconv.Itoa(i)))
	}
	for i, exited := range all {
		if ws := status(t, exited); !ws.Exited() || ws.ExitStatus() != i {
			t.Fatalf("child %d: status %v", i, ws)
		}
	}
	ws := status(t, spawn(t, nil, "/bin/sh", "-c", "kill -TERM $$"))
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("a child killed by SIGTERM: status %v", ws)
	}
}

func state(pid int) (byte, int, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	ppid, _ := strconv.Atoi(fields[1])
	return fields[0][0], ppid, true
}

func TestOrphansAreReaped(t *testing.T) {
	out, err := os.Create(filepath.Join(t.TempDir(), "pid"))
	if err != nil {
		t.Fatal(err)
	}
	// The shell leaves a child behind and exits: the child is re-parented to us.
	ws := status(t, spawn(t, out, "/bin/sh", "-c", "sleep 0.3 & echo $!"))
	if ws.ExitStatus() != 0 {
		t.Fatalf("status %v", ws)
	}
	data, _ := os.ReadFile(out.Name())
	orphan, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("pid file: %q", data)
	}
	if _, ppid, ok := state(orphan); !ok || ppid != os.Getpid() {
		t.Fatalf("the orphan %d has parent %d, not this subreaper %d", orphan, ppid, os.Getpid())
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _, ok := state(orphan)
		if !ok {
			return // exited and reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("the orphan %d is still there in state %c", orphan, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
