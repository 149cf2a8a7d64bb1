package proc

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
	"vibebox.dev/sandboxd/internal/testsupport"

	"vibebox.dev/sandboxd/internal/reaper"
)

// The uids these tests run processes as (no other package's tests use them).
const (
	readerUID = 61020
	bombUID   = 61021
)

func TestMain(m *testing.M) {
	if err := reaper.Start(); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

type spawned struct {
	pid    int
	exited <-chan syscall.WaitStatus
}

// spawn starts argv as uid in a session of its own, with the given stdout (nil: /dev/null).
func spawn(t *testing.T, uid int, env []string, stdout *os.File, argv ...string) spawned {
	t.Helper()
	null, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	out := null
	if stdout != nil {
		out = stdout
	}
	attr := &syscall.ProcAttr{
		Dir: "/", Env: append([]string{"PATH=/usr/bin:/bin"}, env...), Files: []uintptr{null.Fd(), out.Fd(), null.Fd()},
		Sys: &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}},
	}
	pid, exited, err := reaper.Spawn(argv[0], argv, attr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	return spawned{pid, exited}
}

func TestStatIsNotFooledByTheProcessName(t *testing.T) {
	dir, err := os.MkdirTemp("", "liar") // t.TempDir's parent is closed to other users
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	liar := filepath.Join(dir, "x) Z 1 1 1 (")
	if err := os.Symlink("/bin/sleep", liar); err != nil {
		t.Fatal(err)
	}
	p := spawn(t, readerUID, nil, nil, liar, "30")
	testsupport.Eventually(t, "the process runs under its name", 2*time.Second, func() bool {
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/comm")
		return len(comm) > 2 && comm[0] == 'x'
	})
	info, ok := Stat(p.pid)
	if !ok || info.PPID != os.Getpid() || info.Session != p.pid || info.PGRP != p.pid || info.UID != readerUID ||
		Stopped(info.State) {
		t.Fatalf("Stat: %+v %v", info, ok)
	}
}

func TestAReaderReadsAnotherUsersEnvironmentAndFiles(t *testing.T) {
	read, write, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer read.Close()
	id, err := Identify(write.Fd())
	if err != nil {
		t.Fatal(err)
	}
	marked := spawn(t, readerUID, []string{"A=1", Marker + "=cmd-1", "B=2"}, write, "/bin/sleep", "30")
	unmarked := spawn(t, readerUID, nil, nil, "/bin/sleep", "30")
	write.Close()
	WithReader(func(r *Reader) {
		for _, c := range []struct {
			pid    int
			marker string
			holds  bool
		}{{marked.pid, "cmd-1", true}, {unmarked.pid, "", false}} {
			info, ok := Stat(c.pid)
			if !ok {
				t.Fatalf("%d is gone", c.pid)
			}
			marker, readable := r.Marker(c.pid, info, Marker)
			if !readable || marker != c.marker {
				t.Errorf("%d: marker %q readable %v, want %q", c.pid, marker, readable, c.marker)
			}
			if holds := r.Holds(c.pid, info, map[FileID]bool{id: true}); holds != c.holds {
				t.Errorf("%d: holds the pipe %v, want %v", c.pid, holds, c.holds)
			}
		}
	})
	// The thread went back with root's identity: a file only root may read is readable again.
	if _, err := os.ReadFile("/proc/1/environ"); err != nil && os.Geteuid() == 0 {
		t.Fatalf("after the reader: %v", err)
	}
}

func TestMembersFindsPipeHoldersAndDescendants(t *testing.T) {
	read, write, _ := os.Pipe()
	defer read.Close()
	id, _ := Identify(write.Fd())
	// A holder of the command's pipe in a session of its own with no marker, and its child.
	holder := spawn(t, readerUID, nil, write, "/bin/sh", "-c", "sleep 30 & sleep 30")
	write.Close()
	bystander := spawn(t, readerUID, nil, nil, "/bin/sleep", "30")
	testsupport.Eventually(t, "the holder's children", 2*time.Second, func() bool {
		return len(Descendants(Table(nil), holder.pid)) == 2 // both sleeps (dash forks the last one too)
	})
	members := Members(Query{ExecID: "x", Pipes: map[FileID]bool{id: true}})
	if _, ok := members[holder.pid]; !ok || len(members) != 3 {
		t.Fatalf("members %v: want the holder %d and its children", members, holder.pid)
	}
	if _, ok := members[bystander.pid]; ok {
		t.Fatalf("the bystander %d is a member", bystander.pid)
	}
}

func TestEndStopsAForkBombThenKillsIt(t *testing.T) {
	// A bomb bounded by RLIMIT_NPROC (bombUID is this test's alone): it fills its limit, as a
	// sandbox's bomb fills its pids limit, and forks again whenever a slot frees.
	bomb := spawn(t, bombUID, nil, nil, "/bin/bash", "-c",
		"ulimit -u 120; (while :; do sleep 60 & done) 2>/dev/null & b() { b | b & }; b; sleep 60")
	count := func() int {
		n := 0
		for _, p := range Table(nil) {
			if p.UID == bombUID && p.State != 'Z' {
				n++
			}
		}
		return n
	}
	testsupport.Eventually(t, "the bomb fills its limit", 10*time.Second, func() bool { return count() >= 100 })
	started := time.Now()
	ended := End(Query{ExecID: "bomb", Sessions: []int{bomb.pid}})
	if ended < 100 {
		t.Fatalf("End signalled %d processes", ended)
	}
	testsupport.Eventually(t, "every process of the bomb is gone", 3*time.Second, func() bool { return count() == 0 })
	t.Logf("ended %d processes in %s", ended, time.Since(started))
}

func TestCleanSessionsSparesSandboxdAndPID1(t *testing.T) {
	pgid, _ := syscall.Getpgid(0)
	got := cleanSessions([]int{1, 0, -5, pgid, 4242})
	if len(got) != 1 || !got[4242] {
		t.Fatalf("cleanSessions: %v", got)
	}
}
