package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"vibebox.dev/sandboxd/internal/testsupport"

	"vibebox.dev/sandboxd/internal/pid1"
	"vibebox.dev/sandboxd/internal/protocoltest"
	"vibebox.dev/sandboxd/internal/reaper"
)

// These tests run sandboxd itself: this test binary, started again with asMain set, runs main's
// code as uid daemonUID (no other package's tests use it), not as PID 1 but as a child subreaper,
// which runs the same code.
const (
	asMain    = "SANDBOXD_TEST_AS_MAIN"
	token     = "e2e-token-0123456789"
	container = "vb-e2e"
)

// daemonUID is a uid of this run's own: RLIMIT_NPROC counts a uid's processes across every
// container of the engine (one user namespace), so two runs of this suite at once on one engine
// (two CI clones) with a fixed uid shared one fork-bomb limit and each saw only its own half.
var daemonUID = 40000 + rand.IntN(20000)

var binary string // a copy of this test binary that daemonUID may run

func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	if err := reaper.Start(); err != nil {
		panic(err)
	}
	dir, err := os.MkdirTemp("", "sandboxd-test")
	if err != nil {
		panic(err)
	}
	os.Chmod(dir, 0o755)
	binary = filepath.Join(dir, "sandboxd")
	self, _ := os.Executable()
	data, err := os.ReadFile(self)
	if err == nil {
		err = os.WriteFile(binary, data, 0o755)
	}
	if err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestVersionAndUsage(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run([]string{"version"}, &out, &errs); code != 0 || !strings.HasPrefix(out.String(), "sandboxd "+version+" ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	for _, args := range [][]string{
		nil, {"bogus"}, {"serve", "--bogus"}, {"serve", "extra"}, {"serve", "--process-buffer", "0"},
		{"serve", "--max-processes", "-1"}, {"serve", "--process-keep", "soon"},
		{"serve", "--max-terminals", "-1"}, {"serve", "--terminal-buffer", "0"},
		{"serve", "--terminal-buffer", "268435457"},
	} {
		if code := run(args, io.Discard, io.Discard); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

func TestTheTokenFilesAreWaitedFor(t *testing.T) {
	dir := t.TempDir()
	tokenFile, containerFile := filepath.Join(dir, "token"), filepath.Join(dir, "container")
	go func() {
		time.Sleep(200 * time.Millisecond)
		os.WriteFile(containerFile, []byte("vb-1\n"), 0o400)
		os.WriteFile(tokenFile, []byte(" secret \n"), 0o400)
	}()
	gotToken, gotContainer, err := waitForFiles(tokenFile, containerFile, 5*time.Second)
	if err != nil || gotToken != "secret" || gotContainer != "vb-1" {
		t.Fatalf("%q %q %v", gotToken, gotContainer, err)
	}
	started := time.Now()
	_, _, err = waitForFiles(filepath.Join(dir, "missing"), containerFile, 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "missing") || time.Since(started) < 300*time.Millisecond {
		t.Fatalf("a missing file: %v after %s", err, time.Since(started))
	}
}

type daemon struct {
	pid    int
	exited <-chan syscall.WaitStatus
	client *protocoltest.Client
	stderr string // its log file
}

var ids atomic.Int64

func newID() string { return fmt.Sprintf("e2e-%d", ids.Add(1)) }

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs sandboxd serve as daemonUID, with RLIMIT_NPROC nproc when not 0, and more flags.
func start(t *testing.T, nproc uint64, flags ...string) *daemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "sandboxd-files")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	for name, value := range map[string]string{"token": token, "container": container} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, []byte(value), 0o400)
		os.Chown(path, daemonUID, daemonUID) // root's and 0400 in a sandbox; here sandboxd is not root
	}
	logFile, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	null, _ := os.Open(os.DevNull)
	defer null.Close()
	addr := freePort(t)
	argv := []string{"sandboxd", "serve", "--listen", addr, "--user", strconv.Itoa(daemonUID),
		"--token-file", filepath.Join(dir, "token"), "--container-file", filepath.Join(dir, "container")}
	argv = append(argv, flags...)
	attr := &syscall.ProcAttr{
		Dir:   "/tmp",
		Env:   []string{asMain + "=1", "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/"},
		Files: []uintptr{null.Fd(), logFile.Fd(), logFile.Fd()},
		Sys:   &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: uint32(daemonUID), Gid: uint32(daemonUID)}},
	}
	if nproc > 0 {
		// Inherited by sandboxd; this process, root, is exempt from it.
		var old syscall.Rlimit
		syscall.Getrlimit(rlimitNproc, &old)
		syscall.Setrlimit(rlimitNproc, &syscall.Rlimit{Cur: nproc, Max: nproc})
		defer syscall.Setrlimit(rlimitNproc, &old)
	}
	pid, exited, err := reaper.Spawn(binary, argv, attr)
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{pid: pid, exited: exited, stderr: logFile.Name(),
		client: &protocoltest.Client{Addr: addr, Token: token, Container: container}}
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGKILL)
		for _, p := range testsupport.ProcessesOf(daemonUID) {
			syscall.Kill(p, syscall.SIGKILL)
		}
	})
	testsupport.Eventually(t, "sandboxd answers its health check", 10*time.Second, func() bool { return d.healthy() })
	return d
}

const rlimitNproc = 6 // RLIMIT_NPROC

func (d *daemon) healthy() bool {
	conn, err := d.client.Dial()
	if err != nil {
		return false
	}
	defer conn.Close()
	resp, body, err := conn.Get("/")
	return err == nil && resp.StatusCode == 200 && string(body) == `{"ok": true}`
}

func (d *daemon) log() string {
	data, _ := os.ReadFile(d.stderr)
	return string(data)
}

func (d *daemon) exec(t *testing.T, argv ...string) (protocoltest.Header, string) {
	t.Helper()
	header, stdout, stderr, err := d.client.Exec(map[string]any{
		"exec_id": newID(), "argv": argv, "timeout": 20, "output_limit": 1 << 16, "workdir": "/tmp",
	})
	if err != nil {
		t.Fatalf("%q: %v\n%s", argv, err, d.log())
	}
	if header.ExitCode == nil || *header.ExitCode != 0 {
		t.Fatalf("%q: %+v %s", argv, header, stderr)
	}
	return header, string(stdout)
}

func TestSignalsFromSandboxCodeDoNotEndSandboxd(t *testing.T) {
	d := start(t, 0)
	for _, sig := range pid1.Dropped {
		if err := syscall.Kill(d.pid, sig.(syscall.Signal)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	select {
	case status := <-d.exited:
		t.Fatalf("sandboxd ended: %v\n%s", status, d.log())
	default:
	}
	if !d.healthy() {
		t.Fatalf("sandboxd does not answer\n%s", d.log())
	}
}

func TestCommandsStartWithDefaultSignalsAndTheirEnvironment(t *testing.T) {
	d := start(t, 0)
	// What sandboxd drops, it does not ignore: commands start with those signals at their
	// default, and nothing blocked. (What sandboxd inherited stays, as with docker exec: runc
	// starts containers with signal 32 ignored.)
	_, status := d.exec(t, "grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status")
	masks := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(status), "\n") {
		name, value, _ := strings.Cut(line, ":")
		masks[name], _ = strconv.ParseUint(strings.TrimSpace(value), 16, 64)
	}
	if len(masks) != 2 || masks["SigBlk"] != 0 {
		t.Errorf("a command starts with %q", status)
	}
	for _, sig := range append(pid1.Dropped, syscall.SIGTERM, syscall.SIGCHLD) {
		if masks["SigIgn"]&(1<<(uint(sig.(syscall.Signal))-1)) != 0 {
			t.Errorf("a command starts with %v ignored", sig)
		}
	}
	header, env := d.exec(t, "env")
	if !strings.Contains(env, "VIBEBOX_EXEC_ID="+header.ExecID+"\n") {
		t.Errorf("no marker in %q", env)
	}
	if strings.Contains(env, token) || strings.Contains(env, asMain) {
		t.Errorf("sandboxd's secrets or settings reached the command: %q", env)
	}
}

func TestSIGTERMEndsEveryProcessAndExitsZero(t *testing.T) {
	d := start(t, 0)
	go d.client.Exec(map[string]any{"exec_id": newID(), "argv": []string{"sh", "-c", "trap '' TERM; sleep 60 & sleep 60"}, "timeout": 60, "output_limit": 100})
	testsupport.Eventually(t, "the command runs", 5*time.Second, func() bool { return len(testsupport.ProcessesOf(daemonUID)) >= 4 })
	started := time.Now()
	syscall.Kill(d.pid, syscall.SIGTERM)
	select {
	case status := <-d.exited:
		if !status.Exited() || status.ExitStatus() != 0 {
			t.Fatalf("sandboxd exited with %v\n%s", status, d.log())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("sandboxd still runs 5 s after SIGTERM\n%s", d.log())
	}
	// The shell ignores SIGTERM: it was killed after the grace period.
	if took := time.Since(started); took < 1500*time.Millisecond {
		t.Errorf("sandboxd exited after %s: it did not wait for the processes to go", took)
	}
	testsupport.Eventually(t, "every process is gone", 2*time.Second, func() bool { return len(testsupport.ProcessesOf(daemonUID)) == 0 })
}

func TestAKillIsServedWhileAForkBombFillsThePidsLimit(t *testing.T) {
	// RLIMIT_NPROC on sandboxd's uid stands for the sandbox's pids limit: it counts sandboxd's
	// threads and the bomb's processes, and once the bomb has filled it nothing of that uid can
	// start a process or a thread.
	const limit = 150
	d := start(t, limit)
	id := newID()
	// The classic bomb's processes come and go as forks fail; sleeps started by a loop that
	// retries every failed fork keep the limit full.
	bomb := "(while :; do sleep 60 & done) 2>/dev/null & b() { b | b & }; b"
	if status, answer, err := d.client.Call("process/start", map[string]any{"exec_id": id, "argv": []string{"bash", "-c", bomb}, "timeout": 60}, nil); err != nil || status != 200 {
		t.Fatalf("process/start: %d %s %v\n%s", status, answer, err, d.log())
	}
	type killed struct {
		Signalled int `json:"signalled"`
	}
	tasks := func() int {
		n := 0
		for _, pid := range testsupport.ProcessesOf(daemonUID) {
			data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
			for _, line := range strings.Split(string(data), "\n") {
				if value, ok := strings.CutPrefix(line, "Threads:"); ok {
					k, _ := strconv.Atoi(strings.TrimSpace(value))
					n += k
				}
			}
		}
		return n
	}
	testsupport.Eventually(t, "the bomb fills the limit", 30*time.Second, func() bool { return tasks() >= limit-10 })
	time.Sleep(500 * time.Millisecond) // the bomb keeps the limit full meanwhile

	// Requests that each hold a thread in blocking system calls (a /proc scan of every process)
	// at once: the runtime must find their threads in its reserve, since it cannot make any.
	// (CONT changes nothing for processes that run.)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			status, answer, err := d.client.Call("process/kill", map[string]any{"exec_id": id, "signal": "CONT"}, nil)
			if err == nil && status != 200 {
				err = fmt.Errorf("%d %s", status, answer)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatalf("a signal to the bomb: %v\n%s", err, d.log())
		}
	}
	started := time.Now()
	var answer killed
	status, _, err := d.client.Call("process/kill", map[string]any{"exec_id": id, "signal": "KILL", "sweep": true}, &answer)
	if err != nil || status != 200 || answer.Signalled < 50 {
		t.Fatalf("kill: %d %+v %v\n%s", status, answer, err, d.log())
	}
	var listed struct {
		Processes []struct {
			Running bool `json:"running"`
		}
	}
	testsupport.Eventually(t, "the bomb has ended", 10*time.Second, func() bool {
		d.client.Call("process/list", map[string]any{"exec_id": ""}, &listed)
		return len(listed.Processes) == 1 && !listed.Processes[0].Running
	})
	t.Logf("killed %d processes in %s", answer.Signalled, time.Since(started))
	testsupport.Eventually(t, "only sandboxd is left", 5*time.Second, func() bool { return len(testsupport.ProcessesOf(daemonUID)) == 1 })
	if !d.healthy() {
		t.Fatalf("sandboxd does not answer after the bomb\n%s", d.log())
	}
	if _, out := d.exec(t, "echo", "alive"); out != "alive\n" {
		t.Fatalf("echo alive: %q", out)
	}
}

func TestAStreamAndBackgroundProcessesThroughTheBinary(t *testing.T) {
	d := start(t, 0, "--max-processes", "1", "--process-buffer", "100")
	s, err := d.client.Open("stream", map[string]any{"exec_id": newID(), "argv": []string{"sh", "-c", "echo out; echo err >&2; exit 2"}, "timeout": 10})
	if err != nil {
		t.Fatalf("%v\n%s", err, d.log())
	}
	out, err := s.Collect()
	s.Close()
	if err != nil || string(out.Stdout) != "out\n" || string(out.Stderr) != "err\n" || out.Exit.ExitCode == nil || *out.Exit.ExitCode != 2 {
		t.Fatalf("%+v %v", out, err)
	}
	id := newID()
	start := map[string]any{"exec_id": id, "argv": []string{"sh", "-c", "seq 1 1000; sleep 60"}, "timeout": 60}
	if status, answer, err := d.client.Call("process/start", start, nil); err != nil || status != 200 {
		t.Fatalf("process/start: %d %s %v", status, answer, err)
	}
	// --max-processes 1: a second one waits for the first to end.
	if status, _, _ := d.client.Call("process/start", map[string]any{"exec_id": newID(), "argv": []string{"true"}, "timeout": 10}, nil); status != 429 {
		t.Fatalf("a second process: %d", status)
	}
	// --process-buffer 100: the output kept is the last 100 bytes.
	var listed struct {
		Processes []struct {
			ExecID       string `json:"exec_id"`
			StdoutBytes  int64  `json:"stdout_bytes"`
			BufferedFrom int64  `json:"buffered_from"`
		}
	}
	testsupport.Eventually(t, "the output is in", 5*time.Second, func() bool {
		d.client.Call("process/list", map[string]any{"exec_id": ""}, &listed)
		return len(listed.Processes) == 1 && listed.Processes[0].StdoutBytes == 3893
	})
	if p := listed.Processes[0]; p.ExecID != id || p.BufferedFrom != 3893-100 {
		t.Fatalf("listed %+v", listed)
	}
	if status, _, err := d.client.Call("process/kill", map[string]any{"exec_id": id, "signal": "KILL"}, nil); err != nil || status != 200 {
		t.Fatalf("process/kill: %d %v", status, err)
	}
}

func TestATerminalThroughTheBinary(t *testing.T) {
	d := start(t, 0, "--max-terminals", "1", "--terminal-buffer", "100")
	id := newID()
	open := map[string]any{"exec_id": id, "argv": []string{"sh"}, "cols": 50, "rows": 20}
	if status, answer, err := d.client.Call("terminal/open", open, nil); err != nil || status != 200 {
		t.Fatalf("terminal/open: %d %s %v\n%s", status, answer, err, d.log())
	}
	// --max-terminals 1: a second one waits for the first to end.
	if status, _, _ := d.client.Call("terminal/open", map[string]any{"exec_id": newID()}, nil); status != 429 {
		t.Fatalf("a second terminal: %d", status)
	}
	s, err := d.client.Open("terminal/attach", map[string]any{"exec_id": id, "from": "end"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The size first, read before more output comes: with a 100-byte buffer, a reader slowed down
	// by a busy machine may miss the start of a longer output (it gets an 'l' frame instead).
	s.Send('i', []byte("stty size\n"))
	s.Deadline(time.Now().Add(30 * time.Second))
	var seen string
	for !strings.Contains(seen, "20 50\r\n") {
		f, err := s.Read()
		if err != nil || f.Type == 'x' {
			t.Fatalf("before the size: %q %v (%q so far)", f.Type, err, seen)
		}
		if f.Type == 'o' {
			seen += string(f.Payload)
		}
	}
	s.Send('i', []byte("seq 1 1000; exit 5\n"))
	out, err := s.Collect()
	if err != nil || !strings.Contains(string(out.Stdout), "1000\r\n") || out.Exit.ExitCode == nil || *out.Exit.ExitCode != 5 {
		t.Fatalf("%q %+v %v", out.Stdout, out.Exit, err)
	}
	// --terminal-buffer 100: the output kept is the last 100 bytes.
	var listed struct {
		Terminals []struct {
			ExecID       string `json:"exec_id"`
			OutputBytes  int64  `json:"output_bytes"`
			BufferedFrom int64  `json:"buffered_from"`
		}
	}
	if status, _, err := d.client.Call("terminal/list", map[string]any{"exec_id": ""}, &listed); err != nil || status != 200 {
		t.Fatalf("terminal/list: %d %v", status, err)
	}
	if len(listed.Terminals) != 1 || listed.Terminals[0].ExecID != id || listed.Terminals[0].BufferedFrom != listed.Terminals[0].OutputBytes-100 {
		t.Fatalf("listed %+v", listed)
	}
}

func TestAStreamKillIsServedWhileAForkBombFillsThePidsLimit(t *testing.T) {
	const limit = 150
	d := start(t, limit)
	bomb := "echo started; (while :; do sleep 60 & done) 2>/dev/null & b() { b | b & }; b"
	s, err := d.client.Open("stream", map[string]any{"exec_id": newID(), "argv": []string{"bash", "-c", bomb}, "timeout": 60})
	if err != nil {
		t.Fatalf("%v\n%s", err, d.log())
	}
	defer s.Close()
	if f, err := s.Read(); err != nil || string(f.Payload) != "started\n" {
		t.Fatalf("first frame %q %v", f.Payload, err)
	}
	testsupport.Eventually(t, "the bomb fills the limit", 30*time.Second, func() bool { return len(testsupport.ProcessesOf(daemonUID)) >= limit-20 })
	time.Sleep(500 * time.Millisecond)
	started := time.Now()
	if err := s.Send('s', []byte("KILL")); err != nil {
		t.Fatal(err)
	}
	s.Deadline(time.Now().Add(15 * time.Second))
	// The stream ends (bash itself exited long ago: the bomb held its output).
	if out, err := s.Collect(); err != nil || out.Exit.TimedOut {
		t.Fatalf("after KILL: %+v %v\n%s", out.Exit, err, d.log())
	}
	t.Logf("the bomb ended %s after the KILL frame", time.Since(started))
	testsupport.Eventually(t, "only sandboxd is left", 5*time.Second, func() bool { return len(testsupport.ProcessesOf(daemonUID)) == 1 })
	if _, out := d.exec(t, "echo", "alive"); out != "alive\n" {
		t.Fatalf("echo alive: %q", out)
	}
}
