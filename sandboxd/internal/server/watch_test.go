package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"vibebox.dev/sandboxd/internal/command"
	"vibebox.dev/sandboxd/internal/protocoltest"
	"vibebox.dev/sandboxd/internal/testsupport"
	"vibebox.dev/sandboxd/internal/users"
	"vibebox.dev/sandboxd/internal/watch"
)

// serveWatches starts a server whose watches are bounded by cfg.
func serveWatches(t *testing.T, cfg watch.Config) *protocoltest.Client {
	t.Helper()
	if _, err := users.Lookup(runAs); err != nil {
		t.Fatal(err)
	}
	runner := command.NewRunner(command.BaseEnv([]string{"PATH=" + command.DefaultPath}, ""))
	srv := New(Config{Token: "the-token", Container: "vb-test", DefaultUser: runAs, Runner: runner, Watches: watch.NewTable(cfg)})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { l.Close() })
	return &protocoltest.Client{Addr: l.Addr().String(), Token: "the-token", Container: "vb-test"}
}

// readable makes a directory the default user (runAs) may read.
func readable(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func watchBody(id, path string) map[string]any {
	return map[string]any{"exec_id": id, "path": path, "recursive": true}
}

// events reads watch frames until done(events) holds; it fails on any other frame.
func events(t *testing.T, s *protocoltest.Stream, done func([]watch.Event) bool) []watch.Event {
	t.Helper()
	var got []watch.Event
	for !done(got) {
		f, err := s.Read()
		if err != nil {
			t.Fatalf("reading events: %v (got %+v)", err, got)
		}
		if f.Type != 'w' {
			t.Fatalf("a %q frame %s (got %+v)", f.Type, f.Payload, got)
		}
		var batch []watch.Event
		if err := json.Unmarshal(f.Payload, &batch); err != nil || len(batch) == 0 {
			t.Fatalf("a watch frame %q: %v", f.Payload, err)
		}
		got = append(got, batch...)
	}
	return got
}

func hasEvent(events []watch.Event, kind, path string) bool {
	for _, e := range events {
		if e.Type == kind && e.Path == path {
			return true
		}
	}
	return false
}

func TestWatchStreamsEventsUntilTheRootGoes(t *testing.T) {
	c := serveWatches(t, watch.Defaults)
	parent := readable(t)
	root := filepath.Join(parent, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	id := newID()
	s, err := c.Open("watch", watchBody(id, root))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Deadline(time.Now().Add(30 * time.Second))
	// The watch is in place once the 200 is in: nothing made after it is missed.
	os.Mkdir(filepath.Join(root, "sub"), 0o755)
	os.WriteFile(filepath.Join(root, "sub", "a.txt"), []byte("x"), 0o644)
	events(t, s, func(e []watch.Event) bool { return hasEvent(e, watch.Create, "sub/a.txt") })
	os.Rename(filepath.Join(root, "sub", "a.txt"), filepath.Join(root, "b.txt"))
	got := events(t, s, func(e []watch.Event) bool { return hasEvent(e, watch.Rename, "b.txt") })
	if got[len(got)-1].From != "sub/a.txt" {
		t.Fatalf("%+v", got)
	}
	os.RemoveAll(root)
	var last protocoltest.Frame
	for {
		f, err := s.Read()
		if err != nil {
			t.Fatalf("no exit frame: %v", err)
		}
		if f.Type == 'x' {
			last = f
			break
		}
	}
	var end watch.End
	if err := json.Unmarshal(last.Payload, &end); err != nil || end.ExecID != id || end.Reason != watch.EndRemoved {
		t.Fatalf("exit frame %s: %v", last.Payload, err)
	}
	if _, err := s.Read(); err != io.EOF {
		t.Fatalf("after the exit frame: %v, want EOF", err)
	}
}

func TestWatchIsSignedAndNeedsAuthentication(t *testing.T) {
	c := serveWatches(t, watch.Config{MaxWatches: 1, MaxDirs: 10, MaxEvents: 10, MaxBytes: 4096})
	root := readable(t)
	body := watchBody(newID(), root)
	data, _ := json.Marshal(body)

	conn := dial(t, c, false) // no hello: no nonce
	if resp, answer, _ := conn.Post("watch", data, nil); resp == nil || resp.StatusCode != 401 {
		t.Fatalf("without a hello: %v %s", resp, answer)
	}
	conn = dial(t, c, true)
	wrong := protocoltest.Sign("another-token", "watch", "vb-test", conn.Nonce, protocoltest.Digest(data))
	if resp, answer, _ := conn.Post("watch", data, map[string]string{"X-VibeBox-Signature": wrong}); resp == nil || resp.StatusCode != 401 {
		t.Fatalf("signed with another token: %v %s", resp, answer)
	}
	conn = dial(t, c, true)
	signed := protocoltest.Sign("the-token", "exec", "vb-test", conn.Nonce, protocoltest.Digest(data)) // for another endpoint
	if resp, answer, _ := conn.Post("watch", data, map[string]string{"X-VibeBox-Signature": signed}); resp == nil || resp.StatusCode != 401 {
		t.Fatalf("signed for /exec: %v %s", resp, answer)
	}
	// None of them took the one slot; the signed request opens a signed stream.
	conn = dial(t, c, true)
	s, resp, answer, err := conn.Open("watch", data)
	if err != nil || s == nil {
		t.Fatalf("%v %v %s", err, resp, answer)
	}
	if err := conn.VerifyStream(resp, body["exec_id"].(string)); err != nil {
		t.Fatal(err)
	}
	// The slot is taken now.
	if _, err := c.Open("watch", watchBody(newID(), root)); err == nil || !strings.Contains(err.Error(), "429") {
		t.Fatalf("a second watch: %v", err)
	}
}

func TestWatchRefusals(t *testing.T) {
	c := serveWatches(t, watch.Defaults)
	root := readable(t)
	private := t.TempDir()
	os.Chmod(private, 0o700) // not the default user's to read
	file := filepath.Join(root, "file")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		body   map[string]any
		status int
		reason string
	}{
		{map[string]any{"exec_id": newID()}, 400, ""},
		{map[string]any{"exec_id": newID(), "path": "relative"}, 400, ""},
		{map[string]any{"exec_id": newID(), "path": "/" + strings.Repeat("x", 5000)}, 400, ""},
		{map[string]any{"exec_id": newID(), "path": 7}, 400, ""},
		{map[string]any{"exec_id": newID(), "path": root, "excludes": []string{"["}}, 400, ""},
		{map[string]any{"exec_id": newID(), "path": root, "recursive": "yes"}, 400, ""},
		{map[string]any{"exec_id": newID(), "path": root, "user": "nobody-here"}, 422, "user"},
		{map[string]any{"exec_id": newID(), "path": filepath.Join(root, "missing")}, 422, "not_found"},
		{map[string]any{"exec_id": newID(), "path": file}, 422, "not_directory"},
		{map[string]any{"exec_id": newID(), "path": private}, 422, "permission"},
	} {
		status, answer, err := c.Call("watch", tc.body, nil)
		var refusal struct{ Error, Reason string }
		json.Unmarshal(answer, &refusal)
		if err != nil || status != tc.status || refusal.Reason != tc.reason || refusal.Error == "" {
			t.Errorf("%v: %d %s %v (want %d %q)", tc.body, status, answer, err, tc.status, tc.reason)
		}
	}
	// As root, the private directory is fine.
	s, err := c.Open("watch", map[string]any{"exec_id": newID(), "path": private, "user": "0"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func descriptors(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestClosingAWatchFreesItsDescriptors(t *testing.T) {
	c := serveWatches(t, watch.Defaults)
	root := readable(t)
	for i := range 10 {
		os.MkdirAll(filepath.Join(root, fmt.Sprintf("d%d", i), "e"), 0o755)
	}
	warm, err := c.Open("watch", watchBody(newID(), root))
	if err != nil {
		t.Fatal(err)
	}
	warm.Close()
	testsupport.Eventually(t, "the descriptors settled", 10*time.Second, func() bool {
		n := descriptors(t)
		time.Sleep(200 * time.Millisecond)
		return descriptors(t) == n
	})
	before := descriptors(t)
	var streams []*protocoltest.Stream
	for range 3 {
		s, err := c.Open("watch", watchBody(newID(), root))
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
	}
	// Each stream: its connection on both ends and one inotify descriptor (none per directory).
	if open := descriptors(t); open != before+9 {
		t.Fatalf("%d descriptors with 3 watches, %d before", open, before)
	}
	os.WriteFile(filepath.Join(root, "d3", "e", "f"), nil, 0o644)
	for _, s := range streams {
		events(t, s, func(e []watch.Event) bool { return hasEvent(e, watch.Create, "d3/e/f") })
		s.Close()
	}
	testsupport.Eventually(t, "the descriptors freed", 5*time.Second, func() bool { return descriptors(t) == before })
}

func TestAWatchClientThatDoesNotReadCostsBoundedMemory(t *testing.T) {
	cfg := watch.Defaults
	cfg.MaxEvents = 256
	c := serveWatches(t, cfg)
	root := readable(t)
	s, err := c.Open("watch", watchBody(newID(), root))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	heap := func() int64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	before := heap()
	long := strings.Repeat("n", 200)
	for i := range 40000 { // 120000 events of about 300 bytes of JSON: more than the sockets hold
		name := filepath.Join(root, fmt.Sprintf("%s%05d", long, i))
		os.WriteFile(name, []byte("x"), 0o644)
		os.Remove(name)
	}
	time.Sleep(300 * time.Millisecond)
	if grown := heap() - before; grown > 8<<20 {
		t.Fatalf("the heap grew by %d bytes while the client read nothing", grown)
	}
	s.Deadline(time.Now().Add(60 * time.Second))
	events(t, s, func(e []watch.Event) bool {
		return len(e) > 0 && e[len(e)-1].Type == watch.Overflow && e[len(e)-1].Reason == watch.LostQueue
	})
}
