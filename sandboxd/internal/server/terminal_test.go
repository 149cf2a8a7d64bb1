package server

import (
	"fmt"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"vibebox.dev/sandboxd/internal/frames"
	"vibebox.dev/sandboxd/internal/processes"
	"vibebox.dev/sandboxd/internal/protocoltest"
	"vibebox.dev/sandboxd/internal/testsupport"
)

// Terminals run as a uid of their own (an idle timeout sweeps it, as a deadline does).
const terminalAs = "61014:61014"

func terminalBody(id string, fields map[string]any) map[string]any {
	body := map[string]any{"exec_id": id, "user": terminalAs, "workdir": "/tmp", "env": map[string]string{"PS1": "$ "}}
	for k, v := range fields {
		body[k] = v
	}
	return body
}

func openTerminal(t *testing.T, c *protocoltest.Client, request map[string]any) started {
	t.Helper()
	var answer started
	status, data, err := c.Call("terminal/open", request, &answer)
	if err != nil || status != 200 {
		t.Fatalf("terminal/open: %d %s %v", status, data, err)
	}
	return answer
}

func terminals(t *testing.T, c *protocoltest.Client) []processes.TerminalInfo {
	t.Helper()
	var answer struct{ Terminals []processes.TerminalInfo }
	status, data, err := c.Call("terminal/list", map[string]any{"exec_id": ""}, &answer)
	if err != nil || status != 200 {
		t.Fatalf("terminal/list: %d %s %v", status, data, err)
	}
	return answer.Terminals
}

func terminalInfo(t *testing.T, c *protocoltest.Client, id string) processes.TerminalInfo {
	t.Helper()
	for _, info := range terminals(t, c) {
		if info.ExecID == id {
			return info
		}
	}
	t.Fatalf("no terminal %s listed", id)
	return processes.TerminalInfo{}
}

func attachTerminal(t *testing.T, c *protocoltest.Client, id string, from any) *protocoltest.Stream {
	t.Helper()
	s, err := c.Open("terminal/attach", map[string]any{"exec_id": id, "from": from})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// typeLine sends a line of input.
func typeLine(t *testing.T, s *protocoltest.Stream, line string) {
	t.Helper()
	if err := s.Send('i', []byte(line+"\n")); err != nil {
		t.Fatal(err)
	}
}

// The scripts print markers computed by the shell ($((...))), so the terminal's echo of what
// was typed never matches them.

func TestTerminalIsATerminalOfItsUserAndItsSize(t *testing.T) {
	c := serve(t)
	id := newID()
	opened := openTerminal(t, c, terminalBody(id, map[string]any{"cols": 91, "rows": 37}))
	if opened.ExecID != id || opened.Pid <= 0 {
		t.Fatalf("opened %+v", opened)
	}
	s := attachTerminal(t, c, id, "start")
	typeLine(t, s, `echo "U-$(id -u)-$$-$TERM-$(stat -c %u $(tty))"; tty; stty size; echo END-$((6*7))`)
	out := readUntil(t, s, "END-42")
	if want := fmt.Sprintf("U-61014-%d-xterm-256color-61014\r\n", opened.Pid); !strings.Contains(out, want) {
		t.Fatalf("not the user's shell (%s): %q", want, out)
	}
	if !regexp.MustCompile(`\r\n/dev/pts/[0-9]+\r\n37 91\r\n`).MatchString(out) {
		t.Fatalf("tty and stty size: %q", out)
	}
	// The default argv is the login shell (bash here).
	info := terminalInfo(t, c, id)
	if !slices.Equal(info.Argv, []string{"bash", "-l"}) || !info.Running || info.Cols != 91 || info.Rows != 37 ||
		info.Attached != 1 || info.User != terminalAs || info.Pid != opened.Pid || info.OutputBytes == 0 {
		t.Fatalf("listed %+v", info)
	}

	// A resize: the size changes, in order with the input, and the foreground job gets SIGWINCH.
	typeLine(t, s, `sh -c 'trap "echo WINCH-\$((2*3)); stty size; exit" WINCH; echo ARMED-$((3*3)); while :; do sleep 0.05; done'`)
	readUntil(t, s, "ARMED-9")
	if err := s.Resize(120, 40); err != nil {
		t.Fatal(err)
	}
	if out := readUntil(t, s, "40 120\r\n"); !strings.Contains(out, "WINCH-6") {
		t.Fatalf("after the resize: %q", out)
	}
	typeLine(t, s, `stty size; echo END-$((7*7))`)
	if out := readUntil(t, s, "END-49"); !strings.Contains(out, "40 120\r\n") {
		t.Fatalf("stty size after the resize: %q", out)
	}
	if info := terminalInfo(t, c, id); info.Cols != 120 || info.Rows != 40 {
		t.Fatalf("listed after the resize: %+v", info)
	}
	typeLine(t, s, "exit 3")
	out2 := collect(t, s)
	if exitOf(t, out2) != 3 || out2.Exit.ExecID != id || out2.Exit.Signal != "" || out2.Exit.Idle || out2.Exit.StderrBytes != 0 {
		t.Fatalf("exit frame %+v", out2.Exit)
	}
}

func TestTerminalAttachersShareItAndALateOneGetsTheTail(t *testing.T) {
	c := serve(t)
	id := newID()
	openTerminal(t, c, terminalBody(id, map[string]any{"argv": []string{"/bin/sh"}}))
	a, b := attachTerminal(t, c, id, "start"), attachTerminal(t, c, id, "start")
	typeLine(t, a, "echo A-$((1+1))")
	for _, s := range []*protocoltest.Stream{a, b} {
		readUntil(t, s, "A-2")
	}
	typeLine(t, b, "echo B-$((2+2))")
	for _, s := range []*protocoltest.Stream{a, b} {
		readUntil(t, s, "B-4")
	}
	testsupport.Eventually(t, "two attached", 5*time.Second, func() bool { return terminalInfo(t, c, id).Attached == 2 })
	a.Close() // detaches only
	testsupport.Eventually(t, "one attached", 5*time.Second, func() bool { return terminalInfo(t, c, id).Attached == 1 })
	typeLine(t, b, "echo C-$((3+3))")
	readUntil(t, b, "C-6")
	if info := terminalInfo(t, c, id); !info.Running {
		t.Fatalf("after a detach: %+v", info)
	}
	b.Close()
	time.Sleep(200 * time.Millisecond)
	if info := terminalInfo(t, c, id); !info.Running || info.Attached != 0 {
		t.Fatalf("with nobody attached: %+v", info)
	}
	// From the end, a new attacher types; the shell's exit comes to it.
	e := attachTerminal(t, c, id, "end")
	typeLine(t, e, "exit 3")
	if out := collect(t, e); exitOf(t, out) != 3 || strings.Contains(string(out.Stdout), "A-2") {
		t.Fatalf("attached from the end: %q %+v", out.Stdout, out.Exit)
	}
	e.Close() // an attacher counts until its connection closes
	var info processes.TerminalInfo
	testsupport.Eventually(t, "none attached", 5*time.Second, func() bool { info = terminalInfo(t, c, id); return info.Attached == 0 })
	if info.Running || info.ExitCode == nil || *info.ExitCode != 3 || info.FinishedAt == nil {
		t.Fatalf("listed after the exit: %+v", info)
	}
	// After the end: all of it, then the exit.
	out := collect(t, attachTerminal(t, c, id, "start"))
	for _, want := range []string{"A-2", "B-4", "C-6", "exit 3"} {
		if !strings.Contains(string(out.Stdout), want) {
			t.Fatalf("replayed %q: no %q", out.Stdout, want)
		}
	}
	if exitOf(t, out) != 3 || out.Exit.StdoutBytes != info.OutputBytes || len(out.Stdout) != int(info.OutputBytes) {
		t.Fatalf("replayed %d bytes, exit %+v, listed %+v", len(out.Stdout), out.Exit, info)
	}
	// Input to a finished terminal goes nowhere; the attacher still gets its exit.
	late := attachTerminal(t, c, id, "end")
	late.Send('i', []byte("echo too late\n"))
	if out := collect(t, late); len(out.Frames) != 0 || exitOf(t, out) != 3 {
		t.Fatalf("attached after the end: %+v", out)
	}
}

func TestTerminalRingWrapsAndTellsWhatWasLost(t *testing.T) {
	cfg := processes.TerminalDefaults
	cfg.Buffer = 4096
	c := serveTables(t, processes.Defaults, cfg)
	id := newID()
	openTerminal(t, c, terminalBody(id, map[string]any{"argv": []string{"/bin/sh", "-c", "seq 1 5000"}}))
	var info processes.TerminalInfo
	testsupport.Eventually(t, "it ends", 20*time.Second, func() bool { info = terminalInfo(t, c, id); return !info.Running })
	want := strings.ReplaceAll(seqOutput(5000), "\n", "\r\n") // the terminal's output processing
	total := int64(len(want))
	if info.OutputBytes != total || info.BufferedFrom != total-4096 || *info.ExitCode != 0 {
		t.Fatalf("listed %+v, want %d bytes, kept from %d", info, total, total-4096)
	}
	out := collect(t, attachTerminal(t, c, id, "start"))
	if !slices.Equal(out.Lost, []int64{total - 4096}) || out.Frames[0].Type != 'l' || string(out.Stdout) != want[total-4096:] {
		t.Fatalf("from the start: lost %v, %d bytes", out.Lost, len(out.Stdout))
	}
}

func TestTerminalEndsEverythingItStarted(t *testing.T) {
	c := serve(t)
	id := newID()
	opened := openTerminal(t, c, terminalBody(id, map[string]any{"argv": []string{"/bin/bash", "--norc", "-i"}}))
	s := attachTerminal(t, c, id, "start")
	// A background job, and one that left the session and the process group.
	typeLine(t, s, `sleep 300 & setsid sleep 301 & echo STARTED-$((1+1))`)
	readUntil(t, s, "STARTED-2")
	var pids []int
	testsupport.Eventually(t, "both sleeps run", 5*time.Second, func() bool {
		pids = pids[:0]
		for _, pid := range testsupport.ProcessesOf(uidOf(terminalAs)) {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); string(comm) == "sleep\n" && state(pid) != 0 {
				pids = append(pids, pid)
			}
		}
		return len(pids) == 2
	})
	typeLine(t, s, "exit")
	if out := collect(t, s); exitOf(t, out) != 0 {
		t.Fatalf("exit: %+v", out.Exit)
	}
	// Killed before the exit frame went out; gone (and reaped) a moment after.
	testsupport.Eventually(t, "the sleeps and the terminal's session are gone", 5*time.Second, func() bool {
		return state(pids[0]) == 0 && state(pids[1]) == 0 && len(testsupport.InSession(opened.Pid)) == 0
	})
}

func TestTerminalKill(t *testing.T) {
	c := serve(t)
	// /terminal/kill.
	id := newID()
	opened := openTerminal(t, c, terminalBody(id, map[string]any{"argv": []string{"/bin/sh", "-c", "sleep 60 & sleep 60"}}))
	s := attachTerminal(t, c, id, "start")
	testsupport.Eventually(t, "both sleeps run", 5*time.Second, func() bool { return len(testsupport.InSession(opened.Pid)) >= 3 })
	if status, _ := processKillAt(t, c, "terminal/kill", id, "BOGUS"); status != 400 {
		t.Fatalf("an unknown signal: %d", status)
	}
	if status, _ := processKillAt(t, c, "terminal/kill", "no-such-terminal", "KILL"); status != 404 {
		t.Fatalf("an unknown terminal: %d", status)
	}
	if status, count := processKillAt(t, c, "terminal/kill", id, "KILL"); status != 200 || count < 2 {
		t.Fatalf("kill: %d, %d signalled", status, count)
	}
	if out := collect(t, s); exitOf(t, out) != 137 || out.Exit.Signal != "KILL" {
		t.Fatalf("after /terminal/kill: %+v", out.Exit)
	}
	// A KILL frame.
	id = newID()
	openTerminal(t, c, terminalBody(id, nil))
	s = attachTerminal(t, c, id, "start")
	s.Send('s', []byte("KILL"))
	if out := collect(t, s); exitOf(t, out) != 137 || out.Exit.Signal != "KILL" {
		t.Fatalf("after a KILL frame: %+v", out.Exit)
	}
	// A process and a terminal are not found under each other's endpoints.
	if status, _ := processKillAt(t, c, "process/kill", id, "KILL"); status != 404 {
		t.Fatalf("a terminal through /process/kill: %d", status)
	}
}

func TestTerminalIdleTimeout(t *testing.T) {
	c := serve(t)
	id := newID()
	begun := time.Now()
	openTerminal(t, c, terminalBody(id, map[string]any{"argv": []string{"/bin/sh"}, "idle_timeout": 1.5}))
	s := attachTerminal(t, c, id, "start")
	// Typing keeps it open.
	for range 8 {
		typeLine(t, s, "")
		time.Sleep(300 * time.Millisecond)
	}
	if info := terminalInfo(t, c, id); !info.Running {
		t.Fatalf("ended while typed into: %+v", info)
	}
	out := collect(t, s)
	took := time.Since(begun)
	if out.Exit.ExitCode != nil || !out.Exit.Idle || out.Exit.TimedOut || took < 3500*time.Millisecond || took > 15*time.Second {
		t.Fatalf("after %s: %+v", took, out.Exit)
	}
	if info := terminalInfo(t, c, id); !info.Idle || info.ExitCode != nil || info.Running {
		t.Fatalf("listed %+v", info)
	}
	// The deadline (timeout) ends it too.
	id = newID()
	openTerminal(t, c, terminalBody(id, map[string]any{"timeout": 0.5}))
	if out := collect(t, attachTerminal(t, c, id, "start")); out.Exit.ExitCode != nil || !out.Exit.TimedOut {
		t.Fatalf("after the deadline: %+v", out.Exit)
	}
}

func TestTerminalRefusalsAndLimits(t *testing.T) {
	cfg := processes.TerminalDefaults
	cfg.MaxLive = 2
	c := serveTables(t, processes.Defaults, cfg)
	first, second := newID(), newID()
	openTerminal(t, c, terminalBody(first, nil))
	openTerminal(t, c, terminalBody(second, nil))
	for _, r := range []struct {
		body map[string]any
		want int
	}{
		{terminalBody(newID(), nil), 429},
		{terminalBody(first, nil), 409},
	} {
		if status, data, _ := c.Call("terminal/open", r.body, nil); status != r.want {
			t.Errorf("%v: %d %s, want %d", r.body, status, data, r.want)
		}
	}
	processKillAt(t, c, "terminal/kill", second, "KILL")
	testsupport.Eventually(t, "a slot frees", 10*time.Second, func() bool { return !terminalInfo(t, c, second).Running })
	for _, r := range []struct {
		body map[string]any
		want int
	}{
		{terminalBody(newID(), map[string]any{"argv": []string{"/no/such/program"}}), 422},
		{terminalBody(newID(), map[string]any{"user": "ghost"}), 422},
		{terminalBody(newID(), map[string]any{"workdir": "/no/such/dir"}), 422},
		{terminalBody(newID(), map[string]any{"cols": 0}), 400},
		{terminalBody(newID(), map[string]any{"rows": 1001}), 400},
		{terminalBody(newID(), map[string]any{"cols": 80.5}), 400},
		{terminalBody(newID(), map[string]any{"cols": "80"}), 400},
		{terminalBody(newID(), map[string]any{"idle_timeout": -1}), 400},
		{terminalBody(newID(), map[string]any{"timeout": -1}), 400},
		{terminalBody(newID(), map[string]any{"argv": "sh"}), 400},
		{map[string]any{"exec_id": "bad id"}, 400},
	} {
		if status, data, _ := c.Call("terminal/open", r.body, nil); status != r.want {
			t.Errorf("%v: %d %s, want %d", r.body, status, data, r.want)
		}
	}
	// Bad frames drop the attacher, never the terminal.
	for _, frame := range []protocoltest.Frame{
		{Type: 'r', Payload: []byte(`{"cols": 0, "rows": 10}`)},
		{Type: 'r', Payload: []byte(`{"cols": 10, "rows": 1001}`)},
		{Type: 'r', Payload: []byte(`{"cols": 10.5, "rows": 10}`)},
		{Type: 'r', Payload: []byte(`{"cols": 10}`)},
		{Type: 'r', Payload: []byte(`[80, 24]`)},
		{Type: 'r', Payload: []byte(strings.Repeat(" ", 65))},
		{Type: 's', Payload: []byte("BOGUS")},
		{Type: 'c'},
		{Type: 'o', Payload: []byte("x")},
	} {
		s := attachTerminal(t, c, first, "end")
		s.Send(frame.Type, frame.Payload)
		for {
			f, err := s.Read()
			if err != nil {
				break
			}
			if f.Type == 'x' {
				t.Fatalf("%q %q: the terminal ended", frame.Type, frame.Payload)
			}
		}
	}
	if info := terminalInfo(t, c, first); !info.Running || info.Cols != 80 || info.Rows != 24 {
		t.Fatalf("after bad frames: %+v", info)
	}
	// A resize frame on a stream is a protocol error: the command is ended.
	s := open(t, c, streamBody(newID(), true, 30, "cat"))
	s.Resize(80, 24)
	if _, err := s.Collect(); err == nil {
		t.Fatal("a stream took a resize frame")
	}
	processKillAt(t, c, "terminal/kill", first, "KILL")
}

func TestTerminalAnAttacherThatNeverReadsBlocksNothing(t *testing.T) {
	cfg := processes.TerminalDefaults
	cfg.Buffer = 64 << 10
	c := serveTables(t, processes.Defaults, cfg)
	id := newID()
	const n = 20 << 20
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	openTerminal(t, c, terminalBody(id, map[string]any{"argv": []string{"/bin/sh", "-c",
		fmt.Sprintf("read go; head -c %d /dev/zero | tr '\\0' x", n)}}))
	stalled := attachTerminal(t, c, id, "start") // reads nothing until the terminal is done
	typeLine(t, stalled, "")
	var info processes.TerminalInfo
	testsupport.Eventually(t, "it ends", 60*time.Second, func() bool { info = terminalInfo(t, c, id); return !info.Running })
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	if grew := int64(during.HeapAlloc) - int64(before.HeapAlloc); grew > 8<<20 {
		t.Fatalf("the heap grew by %d bytes", grew)
	}
	if info.OutputBytes < n || *info.ExitCode != 0 {
		t.Fatalf("listed %+v", info)
	}
	out := collect(t, stalled)
	var lost int64
	for _, l := range out.Lost {
		lost += l
	}
	if lost == 0 || lost+int64(len(out.Stdout)) != info.OutputBytes || !strings.HasSuffix(string(out.Stdout), strings.Repeat("x", 1000)) {
		t.Fatalf("the stalled attacher: lost %d, got %d, of %d", lost, len(out.Stdout), info.OutputBytes)
	}
}

func TestTerminalInputTheShellDoesNotReadStaysBounded(t *testing.T) {
	c := serve(t)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	id := newID()
	openTerminal(t, c, terminalBody(id, map[string]any{"argv": []string{"sleep", "60"}}))
	s := attachTerminal(t, c, id, "start")
	go func() { // the echo of what the terminal takes: read, so that only the input is stuck
		for {
			if _, err := s.Read(); err != nil {
				return
			}
		}
	}()
	sent := make(chan int, 1)
	go func() {
		n := 0
		for ; n < 40; n++ {
			if s.Send('i', []byte(strings.Repeat("y", frames.MaxStdin))) != nil {
				break
			}
		}
		sent <- n
	}()
	time.Sleep(1500 * time.Millisecond)
	select {
	case n := <-sent:
		t.Fatalf("all %d MiB of input were taken by a terminal that reads none", n)
	default:
	}
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	if grew := int64(during.HeapAlloc) - int64(before.HeapAlloc); grew > 8<<20 {
		t.Fatalf("the heap grew by %d bytes", grew)
	}
	// Another attacher is served meanwhile: it resizes (queued behind the input) and kills.
	other := attachTerminal(t, c, id, "end")
	other.Resize(100, 50)
	other.Send('s', []byte("KILL"))
	if out := collect(t, other); exitOf(t, out) != 137 {
		t.Fatalf("after KILL: %+v", out.Exit)
	}
}
