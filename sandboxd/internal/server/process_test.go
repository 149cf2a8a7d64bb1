package server

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"vibebox.dev/sandboxd/internal/testsupport"

	"vibebox.dev/sandboxd/internal/processes"
	"vibebox.dev/sandboxd/internal/protocoltest"
)

type started struct {
	ExecID    string `json:"exec_id"`
	Pid       int    `json:"pid"`
	StartedAt string `json:"started_at"`
}

func procBody(id string, timeout float64, script string) map[string]any {
	return map[string]any{"exec_id": id, "argv": []string{"/bin/sh", "-c", script}, "timeout": timeout, "env": nil, "workdir": "/tmp"}
}

func startProcess(t *testing.T, c *protocoltest.Client, request map[string]any) started {
	t.Helper()
	var answer started
	status, data, err := c.Call("process/start", request, &answer)
	if err != nil || status != 200 {
		t.Fatalf("process/start: %d %s %v", status, data, err)
	}
	return answer
}

func list(t *testing.T, c *protocoltest.Client) []processes.Info {
	t.Helper()
	var answer struct{ Processes []processes.Info }
	status, data, err := c.Call("process/list", map[string]any{"exec_id": ""}, &answer) // checks the signature
	if err != nil || status != 200 {
		t.Fatalf("process/list: %d %s %v", status, data, err)
	}
	return answer.Processes
}

func find(t *testing.T, c *protocoltest.Client, id string) (processes.Info, bool) {
	t.Helper()
	for _, info := range list(t, c) {
		if info.ExecID == id {
			return info, true
		}
	}
	return processes.Info{}, false
}

func finished(t *testing.T, c *protocoltest.Client, id string) processes.Info {
	t.Helper()
	var info processes.Info
	testsupport.Eventually(t, id+" finishes", 20*time.Second, func() bool {
		var ok bool
		info, ok = find(t, c, id)
		return ok && !info.Running
	})
	return info
}

func attach(t *testing.T, c *protocoltest.Client, id string, from any) *protocoltest.Stream {
	t.Helper()
	s, err := c.Open("process/attach", map[string]any{"exec_id": id, "from": from}) // checks the 200
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func processKill(t *testing.T, c *protocoltest.Client, id, signal string) (int, int) {
	t.Helper()
	return processKillAt(t, c, "process/kill", id, signal)
}

// processKillAt posts a kill to /process/kill or /terminal/kill (kind); it answers the status
// and how many processes were signalled.
func processKillAt(t *testing.T, c *protocoltest.Client, kind, id, signal string) (int, int) {
	t.Helper()
	var answer struct {
		ExecID    string `json:"exec_id"`
		Signalled int    `json:"signalled"`
	}
	status, data, err := c.Call(kind, map[string]any{"exec_id": id, "signal": signal, "sweep": true}, &answer)
	if err != nil || (status == 200 && answer.ExecID != id) {
		t.Fatalf("%s: %d %s %v", kind, status, data, err)
	}
	return status, answer.Signalled
}

// readBytes reads output frames until n bytes came; it answers them and the stream of each.
func readBytes(t *testing.T, s *protocoltest.Stream, n int) (data, streams []byte) {
	t.Helper()
	for len(data) < n {
		f, err := s.Read()
		if err != nil || (f.Type != 'o' && f.Type != 'e') {
			t.Fatalf("after %d of %d bytes: %q %s %v", len(data), n, f.Type, f.Payload, err)
		}
		data = append(data, f.Payload...)
		streams = append(streams, bytes.Repeat([]byte{f.Type}, len(f.Payload))...)
	}
	if len(data) != n {
		t.Fatalf("read %d bytes, want %d", len(data), n)
	}
	return data, streams
}

func split(data, streams []byte) (string, string) {
	var out, errs []byte
	for i, b := range data {
		if streams[i] == 'e' {
			errs = append(errs, b)
		} else {
			out = append(out, b)
		}
	}
	return string(out), string(errs)
}

func TestProcessStartListAttach(t *testing.T) {
	c := serve(t)
	id := newID()
	trigger := "/tmp/go-" + id
	defer os.Remove(trigger)
	script := fmt.Sprintf(`echo one; echo two >&2; echo three; while [ ! -e %s ]; do sleep 0.05; done; echo four >&2; exit 4`, trigger)
	p := startProcess(t, c, procBody(id, 60, script))
	at, err := time.Parse(time.RFC3339, p.StartedAt)
	if p.ExecID != id || p.Pid <= 0 || err != nil || time.Since(at) > time.Minute || time.Since(at) < -time.Second {
		t.Fatalf("start answered %+v (%v)", p, err)
	}
	var info processes.Info
	testsupport.Eventually(t, "the output is in", 5*time.Second, func() bool {
		info, _ = find(t, c, id)
		return info.StdoutBytes == 10 && info.StderrBytes == 4
	})
	if !info.Running || info.Pid != p.Pid || info.User != runAs || !slices.Equal(info.Argv, []string{"/bin/sh", "-c", script}) ||
		info.ExitCode != nil || info.FinishedAt != nil || info.BufferedFrom != 0 || info.StartedAt != p.StartedAt {
		t.Fatalf("listed %+v", info)
	}

	// From the start: everything so far (each stream in order; how the two interleave is how
	// sandboxd read them).
	fromStart := attach(t, c, id, "start")
	all, streams := readBytes(t, fromStart, 14)
	if out, errs := split(all, streams); out != "one\nthree\n" || errs != "two\n" {
		t.Fatalf("from the start: stdout %q, stderr %q", out, errs)
	}
	if got := fromStart.Resp.Header.Get("X-VibeBox-Offset"); got != "0" {
		t.Fatalf("attached from the start at offset %q", got)
	}
	// From an offset: the same bytes from there on.
	for _, offset := range []int{0, 3, 4, 9, 13, 14} {
		s := attach(t, c, id, offset)
		if got := s.Resp.Header.Get("X-VibeBox-Offset"); got != strconv.Itoa(offset) {
			t.Fatalf("attached from %d at offset %q", offset, got)
		}
		data, got := readBytes(t, s, 14-offset)
		if !bytes.Equal(data, all[offset:]) || !bytes.Equal(got, streams[offset:]) {
			t.Fatalf("from %d: %q, want %q", offset, data, all[offset:])
		}
		s.Close()
	}
	// From the end: only what comes next. Two attachers now follow the process.
	fromEnd := attach(t, c, id, "end")
	if got := fromEnd.Resp.Header.Get("X-VibeBox-Offset"); got != "14" {
		t.Fatalf("attached from the end at offset %q", got)
	}
	time.Sleep(200 * time.Millisecond) // anything old would be sent by now
	os.WriteFile(trigger, nil, 0o644)
	for name, s := range map[string]*protocoltest.Stream{"start": fromStart, "end": fromEnd} {
		out := collect(t, s)
		if string(out.Stderr) != "four\n" || len(out.Stdout) != 0 || exitOf(t, out) != 4 ||
			out.Exit.ExecID != id || out.Exit.StdoutBytes != 10 || out.Exit.StderrBytes != 9 {
			t.Fatalf("attached from %s: %q %q %+v", name, out.Stdout, out.Stderr, out.Exit)
		}
	}
	info = finished(t, c, id)
	if info.ExitCode == nil || *info.ExitCode != 4 || info.TimedOut || info.FinishedAt == nil {
		t.Fatalf("finished: %+v", info)
	}
	if at, err := time.Parse(time.RFC3339, *info.FinishedAt); err != nil || time.Since(at) > time.Minute {
		t.Fatalf("finished_at %q", *info.FinishedAt)
	}

	// A finished process: its output at once, then the exit.
	out := collect(t, attach(t, c, id, "start"))
	if string(out.Stdout) != "one\nthree\n" || string(out.Stderr) != "two\nfour\n" || exitOf(t, out) != 4 {
		t.Fatalf("after the end: %q %q %+v", out.Stdout, out.Stderr, out.Exit)
	}
	if out := collect(t, attach(t, c, id, 19)); len(out.Frames) != 0 || exitOf(t, out) != 4 {
		t.Fatalf("from the end of a finished process: %+v", out)
	}

	// Refusals: an unknown process, a from that is none of the three, an offset past the end.
	for _, r := range []struct {
		body map[string]any
		want int
	}{
		{map[string]any{"exec_id": "no-such-process", "from": "start"}, 404},
		{map[string]any{"exec_id": id, "from": "middle"}, 400},
		{map[string]any{"exec_id": id, "from": 1.5}, 400},
		{map[string]any{"exec_id": id, "from": -1}, 400},
		{map[string]any{"exec_id": id, "from": 20}, 400},
		{map[string]any{"exec_id": id, "from": true}, 400},
	} {
		conn := dial(t, c, true)
		s, resp, answer, err := conn.Open("process/attach", body(r.body))
		if err != nil || s != nil || resp.StatusCode != r.want {
			t.Errorf("%v: %v %v %s, want %d", r.body, resp.Status, err, answer, r.want)
		}
	}
}

func TestProcessTwoAttachersGetEverything(t *testing.T) {
	c := serve(t)
	id := newID()
	trigger := "/tmp/go-" + id
	defer os.Remove(trigger)
	startProcess(t, c, procBody(id, 60, fmt.Sprintf(`while [ ! -e %s ]; do sleep 0.05; done; seq 1 100000`, trigger)))
	a, b := attach(t, c, id, "start"), attach(t, c, id, "start")
	os.WriteFile(trigger, nil, 0o644)
	var want strings.Builder
	for i := 1; i <= 100000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	for _, s := range []*protocoltest.Stream{a, b} {
		out := collect(t, s)
		if string(out.Stdout) != want.String() || len(out.Lost) != 0 || exitOf(t, out) != 0 {
			t.Fatalf("an attacher got %d bytes (lost %v), %+v", len(out.Stdout), out.Lost, out.Exit)
		}
	}
}

func seqOutput(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return b.String()
}

func TestProcessRingWrapsAndTellsWhatWasLost(t *testing.T) {
	cfg := processes.Defaults
	cfg.Buffer = 4096
	c := serveWith(t, cfg)
	id := newID()
	startProcess(t, c, procBody(id, 60, "seq 1 20000"))
	want := seqOutput(20000)
	total := int64(len(want))
	info := finished(t, c, id)
	if info.StdoutBytes != total || info.BufferedFrom != total-4096 {
		t.Fatalf("listed %+v, want %d bytes written, kept from %d", info, total, total-4096)
	}
	for _, r := range []struct {
		from any
		lost int64
		keep int64
	}{
		{"start", total - 4096, 4096},
		{100, total - 4096 - 100, 4096},
		{total - 4096, 0, 4096},
		{total - 10, 0, 10},
	} {
		out := collect(t, attach(t, c, id, r.from))
		if r.lost > 0 && (len(out.Frames) == 0 || out.Frames[0].Type != 'l') {
			t.Fatalf("from %v: the first frame is not the lost count", r.from)
		}
		if (r.lost > 0 && !slices.Equal(out.Lost, []int64{r.lost})) || (r.lost == 0 && len(out.Lost) > 0) {
			t.Fatalf("from %v: lost %v, want %d", r.from, out.Lost, r.lost)
		}
		if string(out.Stdout) != want[total-r.keep:] || out.Exit.StdoutBytes != total {
			t.Fatalf("from %v: %d bytes, not the last %d of the output", r.from, len(out.Stdout), r.keep)
		}
	}
}

func TestProcessDetachKillAndSignals(t *testing.T) {
	c := serve(t)
	id := newID()
	p := startProcess(t, c, procBody(id, 60, `trap 'echo got TERM; exit 9' TERM; echo ready; while :; do sleep 0.05; done`))
	s := attach(t, c, id, "start")
	readUntil(t, s, "ready\n")
	s.Close() // detaches only
	time.Sleep(300 * time.Millisecond)
	if info, _ := find(t, c, id); !info.Running || state(p.Pid) == 0 {
		t.Fatalf("after a detach: %+v", info)
	}
	// An attacher may signal it.
	s = attach(t, c, id, "end")
	s.Send('s', []byte("TERM"))
	if out := collect(t, s); string(out.Stdout) != "got TERM\n" || exitOf(t, out) != 9 {
		t.Fatalf("TERM from an attacher: %q %+v", out.Stdout, out.Exit)
	}

	// /process/kill.
	id = newID()
	p = startProcess(t, c, procBody(id, 60, "sleep 60 & sleep 60"))
	testsupport.Eventually(t, "both sleeps run", 5*time.Second, func() bool { return len(testsupport.InSession(p.Pid)) >= 2 })
	if status, _ := processKill(t, c, id, "BOGUS"); status != 400 {
		t.Fatalf("an unknown signal: %d", status)
	}
	if status, _ := processKill(t, c, "no-such-process", "KILL"); status != 404 {
		t.Fatalf("an unknown process: %d", status)
	}
	if status, count := processKill(t, c, id, "KILL"); status != 200 || count < 2 {
		t.Fatalf("kill: %d, %d signalled", status, count)
	}
	if info := finished(t, c, id); info.ExitCode == nil || *info.ExitCode != 137 {
		t.Fatalf("after KILL: %+v", info)
	}
	if status, count := processKill(t, c, id, "TERM"); status != 200 || count != 0 {
		t.Fatalf("a finished process: %d, %d signalled", status, count)
	}
	// An attacher's bad frame drops the attacher, not the process.
	id = newID()
	p = startProcess(t, c, procBody(id, 60, "sleep 60"))
	s = attach(t, c, id, "start")
	s.Send('i', []byte("no stdin here"))
	if _, err := s.Read(); err == nil {
		t.Fatal("the attacher is still connected")
	}
	if info, _ := find(t, c, id); !info.Running {
		t.Fatal("an attacher's bad frame ended the process")
	}
	processKill(t, c, id, "KILL")
}

func TestProcessTimeout(t *testing.T) {
	c := serve(t)
	id := newID()
	begun := time.Now()
	startProcess(t, c, procBody(id, 0.5, "echo before; sleep 30"))
	info := finished(t, c, id)
	if !info.TimedOut || info.ExitCode != nil || info.StdoutBytes != 7 || time.Since(begun) > 10*time.Second {
		t.Fatalf("after the timeout: %+v after %s", info, time.Since(begun))
	}
}

func TestProcessExecIDConflicts(t *testing.T) {
	c := serve(t)
	id := newID()
	startProcess(t, c, procBody(id, 60, "sleep 60"))
	marker := "/tmp/ran-" + id
	status, _, _ := c.Call("process/start", procBody(id, 60, "touch "+marker), nil)
	if status != 409 {
		t.Fatalf("the same id again: %d", status)
	}
	processKill(t, c, id, "KILL")
	finished(t, c, id)
	if status, _, _ := c.Call("process/start", procBody(id, 60, "touch "+marker), nil); status != 409 {
		t.Fatalf("the id of a finished process kept: %d", status)
	}
	// The id of a running stream.
	id = newID()
	s := open(t, c, streamBody(id, true, 30, "cat"))
	if status, _, _ := c.Call("process/start", procBody(id, 60, "touch "+marker), nil); status != 409 {
		t.Fatalf("a running stream's id: %d", status)
	}
	s.Send('c', nil)
	collect(t, s)
	if _, err := os.Stat(marker); err == nil {
		os.Remove(marker)
		t.Fatal("a refused process ran")
	}
}

func TestProcessMaxProcesses(t *testing.T) {
	cfg := processes.Defaults
	cfg.MaxLive = 2
	c := serveWith(t, cfg)
	first, second := newID(), newID()
	startProcess(t, c, procBody(first, 60, "sleep 60"))
	startProcess(t, c, procBody(second, 60, "sleep 60"))
	if status, _, _ := c.Call("process/start", procBody(newID(), 60, "true"), nil); status != 429 {
		t.Fatalf("a third: %d", status)
	}
	processKill(t, c, first, "KILL")
	finished(t, c, first)
	third := newID()
	startProcess(t, c, procBody(third, 60, "sleep 60")) // a slot is free again
	processKill(t, c, second, "KILL")
	processKill(t, c, third, "KILL")
}

func TestProcessFinishedOnesAreKeptForAWhile(t *testing.T) {
	cfg := processes.Defaults
	cfg.MaxFinished, cfg.Keep = 3, 3*time.Second
	c := serveWith(t, cfg)
	var ids []string
	for i := range 5 {
		id := fmt.Sprintf("%s-%d", newID(), i)
		ids = append(ids, id)
		startProcess(t, c, procBody(id, 60, "echo "+id))
		finished(t, c, id)
	}
	lastDone := time.Now()
	var kept []string
	for _, info := range list(t, c) {
		kept = append(kept, info.ExecID)
	}
	if !slices.Equal(kept, ids[2:]) {
		t.Fatalf("kept %q, want the 3 newest of %q", kept, ids)
	}
	if out := collect(t, attach(t, c, ids[4], "start")); string(out.Stdout) != ids[4]+"\n" {
		t.Fatalf("a kept process's output: %q", out.Stdout)
	}
	conn := dial(t, c, true)
	if _, resp, _, _ := conn.Open("process/attach", body(map[string]any{"exec_id": ids[0], "from": "start"})); resp.StatusCode != 404 {
		t.Fatalf("attach to a dropped process: %s", resp.Status)
	}
	testsupport.Eventually(t, "the kept ones expire", 10*time.Second, func() bool { return len(list(t, c)) == 0 })
	if took := time.Since(lastDone); took < 2*time.Second {
		t.Fatalf("finished processes were dropped after %s, before their time", took)
	}
}

func TestProcessAnAttacherThatNeverReadsBlocksNothing(t *testing.T) {
	cfg := processes.Defaults
	cfg.Buffer = 64 << 10
	c := serveWith(t, cfg)
	id := newID()
	trigger := "/tmp/go-" + id
	defer os.Remove(trigger)
	const n = 3000000
	startProcess(t, c, procBody(id, 60, fmt.Sprintf(`while [ ! -e %s ]; do sleep 0.05; done; seq 1 %d`, trigger, n)))
	stalled := attach(t, c, id, "start") // reads nothing until the process is done
	reader := attach(t, c, id, "start")
	got := make(chan protocoltest.Output, 1)
	go func() {
		out, _ := reader.Collect()
		got <- out
	}()
	os.WriteFile(trigger, nil, 0o644)
	want := seqOutput(n)
	info := finished(t, c, id)
	if info.StdoutBytes != int64(len(want)) || *info.ExitCode != 0 {
		t.Fatalf("the process: %+v", info)
	}
	// Each attacher got, in order, pieces of the output with what it lost in between.
	check := func(name string, out protocoltest.Output) {
		t.Helper()
		cursor, lost, pieces := 0, 0, 0
		for _, f := range out.Frames {
			switch f.Type {
			case 'l':
				var n int
				fmt.Sscanf(string(f.Payload), `{"lost":%d}`, &n)
				cursor += n
				lost += n
			case 'o':
				if cursor+len(f.Payload) > len(want) || string(f.Payload) != want[cursor:cursor+len(f.Payload)] {
					t.Fatalf("%s: the bytes at %d are not the output's", name, cursor)
				}
				cursor += len(f.Payload)
				pieces++
			}
		}
		if cursor != len(want) || out.Exit.StdoutBytes != int64(len(want)) {
			t.Fatalf("%s: ended at %d of %d (lost %d), exit %+v", name, cursor, len(want), lost, out.Exit)
		}
		t.Logf("%s: lost %d of %d bytes", name, lost, len(want))
	}
	select {
	case out := <-got:
		check("the reader", out)
	case <-time.After(30 * time.Second):
		t.Fatal("the reading attacher did not get the exit frame")
	}
	out := collect(t, stalled)
	if len(out.Lost) == 0 {
		t.Fatal("the stalled attacher fell behind the buffer but lost nothing")
	}
	check("the stalled attacher", out)
	if !strings.HasSuffix(string(out.Stdout), want[len(want)-1000:]) {
		t.Fatal("the stalled attacher did not get the end of the output")
	}
}
