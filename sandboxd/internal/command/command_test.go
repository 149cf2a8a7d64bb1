package command

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"vibebox.dev/sandboxd/internal/testsupport"

	"vibebox.dev/sandboxd/internal/proc"
	"vibebox.dev/sandboxd/internal/reaper"
	"vibebox.dev/sandboxd/internal/users"
)

// Commands run as nobody; the tests that fork without bound, or that check every process of a
// user is gone, use uids of their own (no other package's tests use them, and RLIMIT_NPROC,
// which counts a uid's processes across the host, bounds them).
var nobody = users.User{Name: "nobody", UID: 65534, GID: 65534, Groups: []int{65534}, Home: "/nonexistent"}

// treeUID is TestTimeoutEndsTheWholeTree's, of this run only: RLIMIT_NPROC counts a uid's
// processes across the engine's containers, and two runs at once would share one limit.
var treeUID = 70000 + mrand.IntN(20000)

func TestMain(m *testing.M) {
	if err := reaper.Start(); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

var ids atomic.Int64

func newID() string { return fmt.Sprintf("test-%d-%d", os.Getpid(), ids.Add(1)) }

func newRunner() *Runner {
	return NewRunner(BaseEnv([]string{"PATH=" + DefaultPath}, ""))
}

func request(argv ...string) Request {
	return Request{ExecID: newID(), Argv: argv, Workdir: "/tmp", Timeout: 10 * time.Second, OutputLimit: 1 << 20, User: nobody}
}

func sh(script string) Request { return request("/bin/sh", "-c", script) }

func mustRun(t *testing.T, r *Runner, req Request) Result {
	t.Helper()
	result, err := r.Run(req)
	if err != nil {
		t.Fatalf("%q: %v", req.Argv, err)
	}
	return result
}

func exitCode(t *testing.T, result Result) int {
	t.Helper()
	if result.ExitCode == nil {
		t.Fatalf("no exit code: %+v", result)
	}
	return *result.ExitCode
}

func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	state := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))[0]
	return state != "Z" && state != "X"
}

func TestExitCodes(t *testing.T) {
	r := newRunner()
	for _, c := range []struct {
		script string
		want   int
	}{
		{"true", 0},
		{"exit 3", 3},
		{"kill -TERM $$", 128 + 15}, // signalled: 128 + the signal
		{"kill -KILL $$", 128 + 9},
	} {
		result := mustRun(t, r, sh(c.script))
		if got := exitCode(t, result); got != c.want || result.TimedOut || result.OOMKilled {
			t.Errorf("%q: exit %d (timed out %v, OOM %v), want %d", c.script, got, result.TimedOut, result.OOMKilled, c.want)
		}
	}
}

func TestOOMKillIsAn137WhileTheCountGrew(t *testing.T) {
	dir, err := os.MkdirTemp("", "oom")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o777)
	events := filepath.Join(dir, "memory.events")
	old := oomFiles
	oomFiles = []string{events}
	defer func() { oomFiles = old }()
	r := newRunner()
	for i, c := range []struct {
		script string
		want   bool
	}{
		{"echo 'oom_kill 1' > " + events + "; kill -KILL $$", true},
		{"kill -KILL $$", false},                              // killed, but the count did not grow
		{"echo 'oom_kill 2' > " + events + "; exit 3", false}, // the count grew, but no SIGKILL
	} {
		os.WriteFile(events, []byte(fmt.Sprintf("oom 0\noom_kill %d\n", i*10)), 0o666)
		os.Chmod(events, 0o666)
		if got := mustRun(t, r, sh(c.script)).OOMKilled; got != c.want {
			t.Errorf("%q: oom_killed %v, want %v", c.script, got, c.want)
		}
	}
}

func TestOutputIsKeptUpToTheLimitAndCounted(t *testing.T) {
	r := newRunner()
	req := sh("head -c 100000 /dev/zero; printf 'warn' >&2")
	req.OutputLimit = 1000
	result := mustRun(t, r, req)
	if len(result.Stdout) != 1000 || result.StdoutBytes != 100000 || string(result.Stderr) != "warn" ||
		result.StderrBytes != 4 || !result.Truncated() {
		t.Fatalf("kept %d of %d bytes, stderr %q of %d, truncated %v",
			len(result.Stdout), result.StdoutBytes, result.Stderr, result.StderrBytes, result.Truncated())
	}
	result = mustRun(t, r, sh("printf 'out'; printf 'err' >&2"))
	if string(result.Stdout) != "out" || string(result.Stderr) != "err" || result.Truncated() {
		t.Fatalf("stdout %q, stderr %q, truncated %v", result.Stdout, result.Stderr, result.Truncated())
	}
}

func TestStdinLargerThanAPipeBuffer(t *testing.T) {
	r := newRunner()
	data := make([]byte, 1<<20) // 16 pipe buffers
	rand.Read(data)
	sum := sha256.Sum256(data)

	req := request("sha256sum")
	req.Stdin = data
	result := mustRun(t, r, req)
	if got := strings.Fields(string(result.Stdout)); len(got) == 0 || got[0] != hex.EncodeToString(sum[:]) {
		t.Fatalf("sha256sum of stdin: %q", result.Stdout)
	}

	// A command that never reads it is done when it exits, not at its deadline.
	req = sh("sleep 0.2; echo done")
	req.Stdin = data
	started := time.Now()
	result = mustRun(t, r, req)
	if string(result.Stdout) != "done\n" || result.TimedOut || time.Since(started) > 5*time.Second {
		t.Fatalf("a command that does not read stdin: %+v after %s", result, time.Since(started))
	}

	// Without stdin, it reads /dev/null.
	req = request("cat")
	result = mustRun(t, r, req)
	if exitCode(t, result) != 0 || len(result.Stdout) != 0 {
		t.Fatalf("cat without stdin: %+v", result)
	}
}

func TestABackgroundChildHoldingStdoutKeepsTheCommandRunning(t *testing.T) {
	r := newRunner()
	started := time.Now()
	result := mustRun(t, r, sh("sleep 1 & echo started"))
	if took := time.Since(started); took < 900*time.Millisecond || string(result.Stdout) != "started\n" || exitCode(t, result) != 0 {
		t.Fatalf("done after %s with %+v: it should wait for the child that holds stdout", took, result)
	}
	started = time.Now()
	req := sh("sleep 30 >/dev/null 2>&1 & echo started")
	mustRun(t, r, req)
	if took := time.Since(started); took > 10*time.Second {
		t.Fatalf("done after %s: a child that let go of the output must not hold the command", took)
	}
	proc.End(proc.Query{ExecID: req.ExecID}) // its sleep, by its marker

	// At the deadline the holder is ended with the command.
	req = sh("sleep 30 & echo $!")
	req.Timeout = 500 * time.Millisecond
	result = mustRun(t, r, req)
	holder, _ := strconv.Atoi(strings.TrimSpace(string(result.Stdout)))
	if !result.TimedOut || result.ExitCode != nil || holder == 0 {
		t.Fatalf("timed out %v, exit %v, stdout %q", result.TimedOut, result.ExitCode, result.Stdout)
	}
	testsupport.Eventually(t, "the child holding stdout is ended", 2*time.Second, func() bool { return !alive(holder) })
}

func TestTimeoutEndsTheWholeTree(t *testing.T) {
	if len(testsupport.ProcessesOf(treeUID)) > 0 {
		t.Fatalf("uid %d has processes before the test", treeUID)
	}
	tree := users.User{UID: treeUID, GID: treeUID, Groups: []int{treeUID}, Home: "/"}
	r := NewRunner(BaseEnv([]string{"PATH=" + DefaultPath}, ""))
	// Escapees in sessions of their own, orphaned at once: one with no marker and no output (only
	// the sweep finds it), one that keeps the marker (only the marker finds it: sandboxd reads
	// another user's environment); one that keeps the marker and stdout; and a fast forker.
	req := Request{ExecID: newID(), Workdir: "/tmp", Timeout: 3 * time.Second, OutputLimit: 1 << 16, User: tree,
		// The fast forker comes last and the shell forks nothing after it: once the forker has
		// the uid's 200 processes, a fork of the shell's would wait in bash's retries (on a loaded
		// machine past the deadline, with "up" never printed).
		Argv: []string{"/bin/bash", "-c", `ulimit -u 200
( /usr/bin/env -i /usr/bin/setsid /bin/sleep 60 </dev/null >/dev/null 2>&1 & )
( /usr/bin/setsid /bin/sleep 60 </dev/null >/dev/null 2>&1 & )
/usr/bin/setsid /bin/sleep 60 &
echo up
( while :; do /bin/sleep 60 & done ) 2>/dev/null &
exec /bin/sleep 60`}}
	result := mustRun(t, r, req)
	if !result.TimedOut || result.ExitCode != nil || string(result.Stdout) != "up\n" {
		t.Fatalf("timed out %v, exit %v, stdout %q, stderr %q", result.TimedOut, result.ExitCode, result.Stdout, result.Stderr)
	}
	testsupport.Eventually(t, "every process of the command is gone", 3*time.Second, func() bool { return len(testsupport.ProcessesOf(treeUID)) == 0 })
}

func TestEnvironment(t *testing.T) {
	base := BaseEnv([]string{
		"PATH=" + DefaultPath, "SANDBOXD_TOKEN=secret-token", "VIBEBOX_AGENT=1", "VIBEBOX_EXEC_ID=stale",
		"HOME=/root", "KEEP=1", "KEEP=2",
	}, "/root")
	r := NewRunner(base)
	req := request("/usr/bin/env")
	req.Env = map[string]string{"FOO": "bar", "KEEP": "3"}
	env := strings.Split(strings.TrimSpace(string(mustRun(t, r, req).Stdout)), "\n")
	for _, want := range []string{
		"VIBEBOX_EXEC_ID=" + req.ExecID, "HOME=/nonexistent", "USER=nobody", "LOGNAME=nobody", "FOO=bar", "KEEP=3",
	} {
		if !slices.Contains(env, want) {
			t.Errorf("%s is not in %q", want, env)
		}
	}
	for _, kv := range env {
		if strings.Contains(kv, "secret-token") || strings.HasPrefix(kv, "VIBEBOX_AGENT=") || strings.Contains(kv, "stale") {
			t.Errorf("%s was passed on", kv)
		}
	}
	if len(env) != 7 { // PATH, KEEP, HOME, USER, LOGNAME, FOO, the marker: each once
		t.Errorf("environment %q", env)
	}

	// A HOME the container set (not runc's for root) stays; the request's wins over both.
	r = NewRunner(BaseEnv([]string{"PATH=" + DefaultPath, "HOME=/workspace"}, "/root"))
	if out := string(mustRun(t, r, sh("echo $HOME")).Stdout); out != "/workspace\n" {
		t.Errorf("HOME %q, want the container's", out)
	}
	req = sh("echo $HOME")
	req.Env = map[string]string{"HOME": "/elsewhere"}
	if out := string(mustRun(t, r, req).Stdout); out != "/elsewhere\n" {
		t.Errorf("HOME %q, want the request's", out)
	}
}

func TestCommandsRunAsTheirUser(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/passwd", []byte("tester:x:65534:65534::/home/tester:/bin/sh\n"), 0o644)
	os.WriteFile(dir+"/group", []byte("tester:x:65534:\nextra:x:4242:someone,tester\nother:x:4343:someone\n"), 0o644)
	tester, err := users.LookupIn("tester", dir+"/passwd", dir+"/group")
	if err != nil {
		t.Fatal(err)
	}
	numeric, _ := users.LookupIn("54321:54322", dir+"/passwd", dir+"/group")
	r := newRunner()
	for _, c := range []struct {
		user users.User
		want string
	}{
		{tester, "65534 65534 4242 65534"},
		{numeric, "54321 54322 54322"},
	} {
		req := sh(`echo $(id -u) $(id -g) $(id -G)`)
		req.User = c.user
		got := strings.Fields(string(mustRun(t, r, req).Stdout))
		want := strings.Fields(c.want)
		slices.Sort(got[2:])
		slices.Sort(want[2:])
		if !slices.Equal(got, want) {
			t.Errorf("%v: uid gid groups %q, want %q", c.user, got, want)
		}
	}
}

func TestACommandThatCannotStartRanNothing(t *testing.T) {
	r := newRunner()
	for _, req := range []Request{
		request("no-such-command"),
		request("/no/such/file"),
		func() Request { req := request("true"); req.Workdir = "/no/such/dir"; return req }(),
		func() Request { req := request("true"); req.Workdir = "/root"; return req }(), // 0700: nobody cannot enter
	} {
		_, err := r.Run(req)
		var notStarted *StartError
		if !errors.As(err, &notStarted) {
			t.Errorf("%q in %s: %v, want a StartError", req.Argv, req.Workdir, err)
		}
	}
}

func TestAnOrphanOfACommandLeavesNoZombie(t *testing.T) {
	r := newRunner()
	result := mustRun(t, r, sh("sleep 0.3 >/dev/null 2>&1 & echo $!"))
	orphan, err := strconv.Atoi(strings.TrimSpace(string(result.Stdout)))
	if err != nil {
		t.Fatal(result)
	}
	testsupport.Eventually(t, "the orphan exits and is reaped", 3*time.Second, func() bool {
		_, err := os.Stat("/proc/" + strconv.Itoa(orphan))
		return err != nil
	})
}

// dash starts each program with vfork: until the child execs, the parent sleeps uninterruptibly
// ('D'), and a child stopped before its exec keeps it there. A kill that waited for every
// member to show stopped would wait its whole KillWait for such a parent.
func TestKillIsQuickWhileAShellWaitsForAVforkedChild(t *testing.T) {
	r := newRunner()
	for i := range 16 {
		l, err := r.Start(sh("while :; do /bin/true; done"))
		if err != nil {
			t.Fatal(err)
		}
		testsupport.Eventually(t, "the loop runs a child", 5*time.Second, func() bool { return len(testsupport.InSession(l.Pid)) >= 2 })
		time.Sleep(time.Duration(i%8) * 7 * time.Millisecond)
		begun := time.Now()
		l.Signal("KILL", false)
		took := time.Since(begun)
		drain(l)
		if out := l.Finish(); out.ExitCode == nil || *out.ExitCode != 137 {
			t.Fatalf("after KILL: %+v", out)
		}
		if took > 2*time.Second {
			t.Fatalf("the kill took %s", took)
		}
	}
}
