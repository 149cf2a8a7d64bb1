package server

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"vibebox.dev/sandboxd/internal/testsupport"

	"vibebox.dev/sandboxd/internal/frames"
	"vibebox.dev/sandboxd/internal/protocoltest"
	"vibebox.dev/sandboxd/internal/threads"
)

// The stream tests that check every process of a user is gone run commands as uids of their own.
const (
	streamTreeAs = "61012:61012" // TestStreamKillEndsTheTreeAndItsEscapees
	streamDropAs = "61013:61013" // the tests where the server goes away
)

func streamBody(id string, stdin bool, timeout float64, argv ...string) map[string]any {
	return map[string]any{"exec_id": id, "argv": argv, "timeout": timeout, "env": nil, "workdir": "/tmp", "stdin": stdin}
}

func open(t *testing.T, c *protocoltest.Client, request map[string]any) *protocoltest.Stream {
	t.Helper()
	s, err := c.Open("stream", request)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func collect(t *testing.T, s *protocoltest.Stream) protocoltest.Output {
	t.Helper()
	out, err := s.Collect()
	if err != nil {
		t.Fatalf("%v (stdout %q, stderr %q)", err, out.Stdout, out.Stderr)
	}
	return out
}

func exitOf(t *testing.T, out protocoltest.Output) int {
	t.Helper()
	if out.Exit.ExitCode == nil {
		t.Fatalf("no exit code: %+v", out.Exit)
	}
	return *out.Exit.ExitCode
}

// readUntil reads frames until stdout holds want; it answers what came.
func readUntil(t *testing.T, s *protocoltest.Stream, want string) string {
	t.Helper()
	var got []byte
	for !strings.Contains(string(got), want) {
		f, err := s.Read()
		if err != nil {
			t.Fatalf("waiting for %q: %v (got %q)", want, err, got)
		}
		if f.Type == 'x' {
			t.Fatalf("waiting for %q: the command ended: %s (got %q)", want, f.Payload, got)
		}
		if f.Type == 'o' {
			got = append(got, f.Payload...)
		}
	}
	return string(got)
}

// state answers a process's state letter from /proc, 0 once it is gone (or a zombie).
func state(pid int) byte {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	if fields[0] == "Z" || fields[0] == "X" {
		return 0
	}
	return fields[0][0]
}

func uidOf(spec string) int {
	uid, _ := strconv.Atoi(strings.Split(spec, ":")[0])
	return uid
}

func TestStreamOutputComesInOrderPerStream(t *testing.T) {
	c := serve(t)
	id := newID()
	s := open(t, c, streamBody(id, false, 30, "/bin/sh", "-c",
		`i=0; while [ $i -lt 3000 ]; do echo "o$i"; echo "e$i" >&2; i=$((i+1)); done; head -c 300000 /dev/zero; exit 3`))
	out := collect(t, s)
	var wantOut, wantErr strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&wantOut, "o%d\n", i)
		fmt.Fprintf(&wantErr, "e%d\n", i)
	}
	wantOut.WriteString(strings.Repeat("\x00", 300000))
	if string(out.Stdout) != wantOut.String() || string(out.Stderr) != wantErr.String() {
		t.Fatalf("stdout %d bytes, stderr %d bytes: not the command's output in order", len(out.Stdout), len(out.Stderr))
	}
	for _, f := range out.Frames {
		if len(f.Payload) > frames.MaxOutput || len(f.Payload) == 0 {
			t.Fatalf("a %q frame of %d bytes", f.Type, len(f.Payload))
		}
	}
	e := out.Exit
	if exitOf(t, out) != 3 || e.ExecID != id || e.TimedOut || e.OOMKilled ||
		e.StdoutBytes != int64(wantOut.Len()) || e.StderrBytes != int64(wantErr.Len()) || e.DurationMS < 0 {
		t.Fatalf("exit frame %+v", e)
	}
}

func TestStreamStdinRoundTrip(t *testing.T) {
	c := serve(t)
	// Interactive: what goes in comes back before stdin is closed.
	s := open(t, c, streamBody(newID(), true, 30, "cat"))
	for _, line := range []string{"hello\n", "again\n"} {
		if err := s.Send('i', []byte(line)); err != nil {
			t.Fatal(err)
		}
		readUntil(t, s, line)
	}
	s.Send('c', nil)
	if out := collect(t, s); exitOf(t, out) != 0 {
		t.Fatalf("cat after its stdin closed: %+v", out.Exit)
	}

	// More stdin than a pipe (64 KiB) and than sandboxd's buffer hold, in frames of up to 1 MiB.
	data := make([]byte, 5<<20+12345)
	rand.Read(data)
	sum := sha256.Sum256(data)
	s = open(t, c, streamBody(newID(), true, 60, "sha256sum"))
	for rest := data; len(rest) > 0; {
		n := min(len(rest), frames.MaxStdin)
		if err := s.Send('i', rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	s.Send('c', nil)
	out := collect(t, s)
	if got := strings.Fields(string(out.Stdout)); exitOf(t, out) != 0 || len(got) == 0 || got[0] != hex.EncodeToString(sum[:]) {
		t.Fatalf("sha256sum of %d bytes of stdin: %q %+v", len(data), out.Stdout, out.Exit)
	}
}

func TestStreamCloseStdin(t *testing.T) {
	c := serve(t)
	// Closed at once: the command reads EOF.
	s := open(t, c, streamBody(newID(), true, 10, "/bin/sh", "-c", "wc -c; echo after"))
	s.Send('c', nil)
	if out := collect(t, s); string(out.Stdout) != "0\nafter\n" {
		t.Fatalf("after close: %q", out.Stdout)
	}
	// Without stdin, the command reads /dev/null, and stdin frames go nowhere.
	s = open(t, c, streamBody(newID(), false, 10, "wc", "-c"))
	s.Send('i', []byte("ignored"))
	if out := collect(t, s); strings.TrimSpace(string(out.Stdout)) != "0" || exitOf(t, out) != 0 {
		t.Fatalf("without stdin: %q %+v", out.Stdout, out.Exit)
	}
	// Stdin after close is dropped (the command has seen its EOF).
	s = open(t, c, streamBody(newID(), true, 10, "wc", "-c"))
	s.Send('i', []byte("12345"))
	s.Send('c', nil)
	s.Send('i', []byte("more"))
	if out := collect(t, s); strings.TrimSpace(string(out.Stdout)) != "5" {
		t.Fatalf("stdin after close: %q", out.Stdout)
	}
}

// trapScript prints the signal it gets and exits 7; a foreground sleep loop keeps it waiting
// (the signal goes to the sleep too, which ends at once).
func trapScript(sig string) string {
	return fmt.Sprintf(`trap 'echo got %s; exit 7' %s; echo ready; while :; do sleep 0.05; done`, sig, sig)
}

func TestStreamSignals(t *testing.T) {
	c := serve(t)
	for _, sig := range []string{"INT", "TERM", "HUP", "QUIT", "USR1", "USR2"} {
		s := open(t, c, streamBody(newID(), false, 20, "/bin/sh", "-c", trapScript(sig)))
		readUntil(t, s, "ready\n")
		if err := s.Send('s', []byte(sig)); err != nil {
			t.Fatal(err)
		}
		out := collect(t, s)
		if exitOf(t, out) != 7 || string(out.Stdout) != "got "+sig+"\n" {
			t.Errorf("%s: %q %+v", sig, out.Stdout, out.Exit)
		}
	}

	// STOP and CONT: the command stops (stdin sent meanwhile waits) and goes on. (A shell
	// blocked in read: a shell between vfork and its child's exec would show 'D', not 'T'.)
	s := open(t, c, streamBody(newID(), true, 20, "/bin/sh", "-c", `echo $$; read x; echo "read $x"; read y`))
	pid, _ := strconv.Atoi(strings.TrimSpace(readUntil(t, s, "\n")))
	s.Send('s', []byte("STOP"))
	testsupport.Eventually(t, "the command is stopped", 5*time.Second, func() bool { return state(pid) == 'T' })
	s.Send('i', []byte("a\n"))
	s.Deadline(time.Now().Add(300 * time.Millisecond))
	if f, err := s.Read(); err == nil {
		t.Fatalf("a stopped command wrote %q", f.Payload)
	}
	s.Deadline(time.Now().Add(time.Minute))
	s.Send('s', []byte("CONT"))
	readUntil(t, s, "read a\n")
	s.Send('s', []byte("TERM"))
	if out := collect(t, s); exitOf(t, out) != 128+15 {
		t.Fatalf("after TERM: %+v", out.Exit)
	}
}

func TestStreamKillEndsTheTreeAndItsEscapees(t *testing.T) {
	uid := uidOf(streamTreeAs)
	if len(testsupport.ProcessesOf(uid)) > 0 {
		t.Fatalf("uid %d has processes before the test", uid)
	}
	c := serve(t)
	request := streamBody(newID(), false, 60, "/bin/bash", "-c", `
( /usr/bin/env -i /usr/bin/setsid /bin/sleep 60 </dev/null >/dev/null 2>&1 & )
/usr/bin/setsid /bin/sleep 60 &
sleep 60 &
echo up; sleep 60`)
	request["user"] = streamTreeAs
	s := open(t, c, request)
	readUntil(t, s, "up\n")
	testsupport.Eventually(t, "the escapees run", 5*time.Second, func() bool { return len(testsupport.ProcessesOf(uid)) >= 4 })
	started := time.Now()
	s.Send('s', []byte("KILL"))
	out := collect(t, s)
	if exitOf(t, out) != 137 || out.Exit.TimedOut || time.Since(started) > 10*time.Second {
		t.Fatalf("after KILL: %+v after %s", out.Exit, time.Since(started))
	}
	// The unmarked escapee in a session of its own went too (the sweep).
	testsupport.Eventually(t, "every process of the command is gone", 3*time.Second, func() bool { return len(testsupport.ProcessesOf(uid)) == 0 })
}

func TestStreamTimeout(t *testing.T) {
	c := serve(t)
	started := time.Now()
	s := open(t, c, streamBody(newID(), true, 0.5, "/bin/sh", "-c", "echo before; sleep 30 & sleep 30"))
	out := collect(t, s)
	if !out.Exit.TimedOut || out.Exit.ExitCode != nil || string(out.Stdout) != "before\n" {
		t.Fatalf("timed out %+v, stdout %q", out.Exit, out.Stdout)
	}
	if took := time.Since(started); took > 10*time.Second {
		t.Fatalf("ended after %s", took)
	}
}

// pidOf starts a stream of a shell that prints its pid first, and answers the stream and pid.
func pidOf(t *testing.T, c *protocoltest.Client, script string) (*protocoltest.Stream, int) {
	t.Helper()
	request := streamBody(newID(), true, 60, "/bin/sh", "-c", "echo $$; "+script)
	request["user"] = streamDropAs
	s := open(t, c, request)
	pid, err := strconv.Atoi(strings.TrimSpace(readUntil(t, s, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return s, pid
}

func TestStreamDisconnectKillsTheCommand(t *testing.T) {
	c := serve(t)
	uid := uidOf(streamDropAs)
	s, pid := pidOf(t, c, "sleep 60 & sleep 60")
	s.Close()
	testsupport.Eventually(t, "the command is killed", 6*time.Second, func() bool { return state(pid) == 0 })
	testsupport.Eventually(t, "its children are killed", 6*time.Second, func() bool { return len(testsupport.ProcessesOf(uid)) == 0 })

	// A half-close (EOF) is a disconnect too.
	s, pid = pidOf(t, c, "sleep 60")
	s.CloseWrite()
	testsupport.Eventually(t, "the command is killed after EOF", 6*time.Second, func() bool { return state(pid) == 0 })
}

func TestStreamAStalledFrameKillsTheCommand(t *testing.T) {
	old := frames.Stall
	frames.Stall = 500 * time.Millisecond
	defer func() { frames.Stall = old }()
	c := serve(t)
	s, pid := pidOf(t, c, "sleep 60")
	time.Sleep(time.Second) // idle between frames: fine
	if state(pid) == 0 {
		t.Fatal("an idle stream's command was killed")
	}
	half := make([]byte, 5+10)
	half[0] = 'i'
	binary.BigEndian.PutUint32(half[1:5], 10)
	s.Send('i', nil) // a whole (empty) frame, then half of one
	if err := s.SendRaw(half[:8]); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, "the command is killed", 8*time.Second, func() bool { return state(pid) == 0 })
	if _, err := s.Read(); err == nil {
		t.Fatal("the connection is still open")
	}
}

func TestStreamProtocolErrorsKillTheCommand(t *testing.T) {
	c := serve(t)
	oversized := make([]byte, 5)
	oversized[0] = 'i'
	binary.BigEndian.PutUint32(oversized[1:], frames.MaxStdin+1)
	for name, bad := range map[string][]byte{
		"an unknown type":      {'z', 0, 0, 0, 0},
		"sandboxd's own type":  {'o', 0, 0, 0, 1, 'x'},
		"an oversized stdin":   oversized,
		"an oversized signal":  append([]byte{'s', 0, 0, 0, 17}, strings.Repeat("A", 17)...),
		"an unknown signal":    append([]byte{'s', 0, 0, 0, 5}, "BOGUS"...),
		"a close with payload": {'c', 0, 0, 0, 1, 'x'},
	} {
		s, pid := pidOf(t, c, "sleep 60")
		if err := s.SendRaw(bad); err != nil {
			t.Fatal(err)
		}
		testsupport.Eventually(t, name+" kills the command", 8*time.Second, func() bool { return state(pid) == 0 })
		for {
			f, err := s.Read()
			if err != nil {
				break // closed, with no exit frame
			}
			if f.Type == 'x' {
				t.Fatalf("%s: an exit frame %s", name, f.Payload)
			}
		}
	}
}

func TestStreamASignalRightAfterThe200ReachesTheCommand(t *testing.T) {
	c := serve(t)
	trapped := 0
	for range 5 {
		started := time.Now()
		s := open(t, c, streamBody(newID(), false, 30, "/bin/sh", "-c", `trap 'echo trapped; exit 5' TERM; while :; do sleep 0.05; done`))
		s.Send('s', []byte("TERM")) // no wait: the command existed before the 200
		out := collect(t, s)
		code := exitOf(t, out)
		// The shell either had its trap in place (it prints) or not yet (TERM's default ends
		// it): the signal reached it either way. Lost, the command would run to its timeout.
		switch {
		case code == 5 && string(out.Stdout) == "trapped\n":
			trapped++
		case code == 128+15 && len(out.Stdout) == 0:
		default:
			t.Fatalf("exit %d, stdout %q", code, out.Stdout)
		}
		if took := time.Since(started); took > 10*time.Second {
			t.Fatalf("the command ended after %s", took)
		}
	}
	t.Logf("the trap caught %d of 5 signals (the others came before the shell set it)", trapped)
}

func TestStreamBackpressureBoundsMemoryAndBlocksTheCommand(t *testing.T) {
	c := serve(t)
	const total = 64 << 20
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	s := open(t, c, streamBody(newID(), false, 60, "/bin/sh", "-c", fmt.Sprintf("echo $$ >&2; exec head -c %d /dev/zero", total)))
	// stdout and stderr are read apart: stdout's first frames may come before the pid on stderr.
	var early int
	f, err := s.Read()
	for err == nil && f.Type == 'o' && early < 1<<20 {
		early += len(f.Payload)
		f, err = s.Read()
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(f.Payload)))
	if err != nil || f.Type != 'e' || pid == 0 {
		t.Fatalf("first stderr frame %q %.80q %v (after %d bytes of stdout)", f.Type, f.Payload, err, early)
	}
	time.Sleep(1500 * time.Millisecond) // the server reads nothing meanwhile
	if st := state(pid); st != 'S' {
		t.Fatalf("the writer's state is %q: it should be blocked on its full pipe", st)
	}
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	if grew := int64(during.HeapAlloc) - int64(before.HeapAlloc); grew > 8<<20 {
		t.Fatalf("the heap grew by %d bytes while the server read nothing", grew)
	}
	out := collect(t, s) // now read: nothing was dropped
	if early+len(out.Stdout) != total || out.Exit.StdoutBytes != total || exitOf(t, out) != 0 {
		t.Fatalf("read %d+%d bytes, exit %+v", early, len(out.Stdout), out.Exit)
	}
}

func TestStreamRefusals(t *testing.T) {
	c := serve(t)
	for _, r := range []struct {
		body string
		want int
	}{
		{`{"exec_id": "a", "argv": ["/no/such/program"], "timeout": 1}`, 422},
		{`{"exec_id": "a", "argv": ["true"], "timeout": 1, "user": "ghost"}`, 422},
		{`{"exec_id": "a", "argv": ["true"], "timeout": 1, "workdir": "/no/such/dir"}`, 422},
		{`{"exec_id": "a", "argv": ["true"], "timeout": 1, "stdin": "yes"}`, 400},
		{`{"exec_id": "a", "argv": [], "timeout": 1}`, 400},
		{`{"exec_id": "a", "argv": ["true"]}`, 400},
	} {
		conn := dial(t, c, true)
		s, resp, answer, err := conn.Open("stream", []byte(r.body))
		if err != nil || s != nil || resp.StatusCode != r.want {
			t.Errorf("%s: %v %v %s, want %d", r.body, resp.Status, err, answer, r.want)
		}
	}
	// An exec id that is running: 409, nothing ran.
	id := newID()
	s := open(t, c, streamBody(id, true, 30, "cat"))
	conn := dial(t, c, true)
	if _, resp, _, _ := conn.Open("stream", body(streamBody(id, false, 30, "touch", "/tmp/"+id))); resp.StatusCode != 409 {
		t.Fatalf("a second stream with the same id: %s", resp.Status)
	}
	if _, err := os.Stat("/tmp/" + id); err == nil {
		t.Fatal("the refused command ran")
	}
	s.Send('c', nil)
	collect(t, s)
	// A stream answer is bound to its connection's nonce and to "stream".
	conn = dial(t, c, true)
	id = newID()
	s2, resp, _, err := conn.Open("stream", body(streamBody(id, false, 10, "true")))
	if err != nil || s2 == nil {
		t.Fatal(err)
	}
	if conn.VerifyStream(resp, id) != nil {
		t.Fatal("the stream's signature does not verify")
	}
	if conn.VerifyStream(resp, "another-id") == nil {
		t.Fatal("the signature does not cover the exec id")
	}
	collect(t, s2)
}

func TestStreamsAndAttachersDoNotMultiplyThreads(t *testing.T) {
	c := serve(t)
	// Warm up: the runtime makes the threads that forks and /proc scans take.
	for range 4 {
		collect(t, open(t, c, streamBody(newID(), false, 10, "true")))
	}
	base := threads.Count()
	// Each stream has four goroutines parked on I/O (two pipes, stdin, the connection), each
	// attacher two (the connection, the process's output): parked by the poller, not on threads.
	var streams []*protocoltest.Stream
	for range 24 {
		streams = append(streams, open(t, c, streamBody(newID(), true, 60, "cat")))
	}
	var ids []string
	for range 6 {
		id := newID()
		ids = append(ids, id)
		startProcess(t, c, procBody(id, 60, "sleep 60"))
		for range 3 {
			attach(t, c, id, "start")
		}
	}
	// Each terminal has two (its master, its input queue; two more wait on channels), each of
	// its attachers two.
	var terminalIDs []string
	for range 4 {
		id := newID()
		terminalIDs = append(terminalIDs, id)
		openTerminal(t, c, terminalBody(id, map[string]any{"argv": []string{"sleep", "60"}}))
		for range 2 {
			attachTerminal(t, c, id, "start")
		}
	}
	time.Sleep(300 * time.Millisecond)
	if now := threads.Count(); now > base+4 {
		t.Fatalf("%d threads with 24 streams, 18 attachers and 4 terminals open, %d before", now, base)
	}
	for _, id := range terminalIDs {
		processKillAt(t, c, "terminal/kill", id, "KILL")
	}
	for _, s := range streams {
		s.Send('c', nil)
		collect(t, s)
	}
	for _, id := range ids {
		processKill(t, c, id, "KILL")
	}
}

func TestStreamStdinTheCommandDoesNotReadStaysBounded(t *testing.T) {
	c := serve(t)
	// A full stdin buffer holds up the stdin frames behind it, not a signal sent after it.
	s := open(t, c, streamBody(newID(), true, 30, "/bin/sh", "-c", trapScript("TERM")))
	readUntil(t, s, "ready\n")
	if err := s.Send('i', make([]byte, frames.MaxStdin)); err != nil { // the pipe takes 64 KiB of it
		t.Fatal(err)
	}
	s.Send('s', []byte("TERM"))
	if out := collect(t, s); exitOf(t, out) != 7 || string(out.Stdout) != "got TERM\n" {
		t.Fatalf("TERM behind a full stdin: %q %+v", out.Stdout, out.Exit)
	}

	// Stdin frames that keep coming wait in the connection: sandboxd's memory stays bounded.
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	s = open(t, c, streamBody(newID(), true, 30, "/bin/sh", "-c", "echo $$; exec sleep 30"))
	pid, err := strconv.Atoi(strings.TrimSpace(readUntil(t, s, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan int, 1)
	go func() {
		n := 0
		for ; n < 40; n++ {
			if s.Send('i', make([]byte, frames.MaxStdin)) != nil {
				break
			}
		}
		sent <- n
	}()
	time.Sleep(1500 * time.Millisecond)
	select {
	case n := <-sent:
		t.Fatalf("all %d MiB of stdin were taken by a command that reads none", n)
	default:
	}
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	if grew := int64(during.HeapAlloc) - int64(before.HeapAlloc); grew > 8<<20 {
		t.Fatalf("the heap grew by %d bytes", grew)
	}
	// sandboxd reads no frame behind the waiting one (a signal, a disconnect) until the command
	// takes stdin or ends: here it is killed from outside (else its deadline ends it), and the
	// stream then ends.
	syscall.Kill(pid, syscall.SIGKILL)
	if out := collect(t, s); exitOf(t, out) != 137 {
		t.Fatalf("after the kill: %+v", out.Exit)
	}
}
