package watch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"vibebox.dev/sandboxd/internal/fsid"
	"vibebox.dev/sandboxd/internal/testsupport"
	"vibebox.dev/sandboxd/internal/users"
)

// The permission tests watch as this uid (no other package's tests use it).
var someone = users.User{Name: "", UID: 61020, GID: 61020, Groups: []int{61020}, Home: "/"}

// tree makes a directory that everyone may read (t.TempDir's are 0700, and so is its parent).
func tree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func open(t *testing.T, root string, recursive bool, cfg Config, excludes ...string) *Watcher {
	t.Helper()
	w, err := Open(Options{Root: root, Recursive: recursive, Excludes: excludes}, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

// until reads events until done(events) holds (within 30 s: other packages' fork bombs run alongside).
func until(t *testing.T, w *Watcher, done func([]Event) bool) []Event {
	t.Helper()
	var got []Event
	stop := make(chan struct{})
	timer := time.AfterFunc(30*time.Second, func() { close(stop) })
	defer timer.Stop()
	for !done(got) {
		batch := w.Next(stop)
		if batch == nil {
			t.Fatalf("no more events (ended %q); got %s", w.Reason(), show(got))
		}
		got = append(got, batch...)
	}
	return got
}

// during answers the events that arrive within d.
func during(w *Watcher, d time.Duration) []Event {
	var got []Event
	stop := make(chan struct{})
	timer := time.AfterFunc(d, func() { close(stop) })
	defer timer.Stop()
	for {
		batch := w.Next(stop)
		if batch == nil {
			return got
		}
		got = append(got, batch...)
	}
}

func show(events []Event) string {
	var parts []string
	for _, e := range events {
		s := e.Type + " " + e.Path
		if e.From != "" {
			s += " from " + e.From
		}
		if e.Reason != "" {
			s += " (" + e.Reason + ")"
		}
		if e.IsDir {
			s += "/"
		}
		parts = append(parts, s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// has: an event of that type and path is among events (its index, -1 when not).
func has(events []Event, kind, path string) int {
	for i, e := range events {
		if e.Type == kind && e.Path == path {
			return i
		}
	}
	return -1
}

func seen(kind, path string) func([]Event) bool {
	return func(events []Event) bool { return has(events, kind, path) >= 0 }
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestCreateWriteChmodRenameRemove(t *testing.T) {
	root := tree(t)
	w := open(t, root, true, Defaults)
	write(t, filepath.Join(root, "a.txt"), "one")
	got := until(t, w, seen(Write, "a.txt"))
	if i := has(got, Create, "a.txt"); i < 0 || i > has(got, Write, "a.txt") || got[i].IsDir {
		t.Fatalf("want a create of a file before its write: %s", show(got))
	}
	if err := os.Chmod(filepath.Join(root, "a.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	until(t, w, seen(Chmod, "a.txt"))
	if err := os.Rename(filepath.Join(root, "a.txt"), filepath.Join(root, "b.txt")); err != nil {
		t.Fatal(err)
	}
	got = until(t, w, seen(Rename, "b.txt"))
	if e := got[has(got, Rename, "b.txt")]; e.From != "a.txt" || e.IsDir || e.Time == "" {
		t.Fatalf("rename: %+v", e)
	}
	if has(got, Remove, "a.txt") >= 0 || has(got, Create, "b.txt") >= 0 {
		t.Fatalf("a move within the tree is one rename: %s", show(got))
	}
	if err := os.Remove(filepath.Join(root, "b.txt")); err != nil {
		t.Fatal(err)
	}
	until(t, w, seen(Remove, "b.txt"))
	if _, err := time.Parse(TimeFormat, got[0].Time); err != nil {
		t.Fatal(err)
	}
}

func TestWritesCoalesce(t *testing.T) {
	root := tree(t)
	w := open(t, root, true, Defaults)
	f, err := os.Create(filepath.Join(root, "log"))
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		f.Write([]byte("line\n"))
	}
	f.Close()
	got := until(t, w, seen(Write, "log"))
	got = append(got, during(w, 200*time.Millisecond)...)
	writes := 0
	for _, e := range got {
		if e.Type == Write {
			writes++
		}
	}
	if writes == 0 || writes > 20 {
		t.Fatalf("1000 writes and a close gave %d write events (want a few)", writes)
	}
}

func TestRecursionIntoDirectoriesMadeLater(t *testing.T) {
	root := tree(t)
	mkdir(t, filepath.Join(root, "old"))
	w := open(t, root, true, Defaults)
	if w.Watches() != 2 {
		t.Fatalf("watches %d, want 2 (the root and old)", w.Watches())
	}
	write(t, filepath.Join(root, "old", "x"), "x")
	until(t, w, seen(Write, "old/x"))

	// Made and filled at once: what landed before the watch was in place is reported too.
	mkdir(t, filepath.Join(root, "new", "deeper", "deepest"))
	write(t, filepath.Join(root, "new", "deeper", "f"), "f")
	got := until(t, w, func(e []Event) bool {
		return has(e, Create, "new") >= 0 && has(e, Create, "new/deeper") >= 0 && has(e, Create, "new/deeper/deepest") >= 0 &&
			has(e, Create, "new/deeper/f") >= 0
	})
	if !got[has(got, Create, "new/deeper")].IsDir {
		t.Fatalf("new/deeper is a directory: %s", show(got))
	}
	testsupport.Eventually(t, "the new directories watched", 15*time.Second, func() bool { return w.Watches() == 5 })
	write(t, filepath.Join(root, "new", "deeper", "deepest", "g"), "g")
	until(t, w, seen(Write, "new/deeper/deepest/g"))

	// Moved in from outside, with what it holds: created, and watched.
	outside := t.TempDir()
	mkdir(t, filepath.Join(outside, "pkg", "sub"))
	write(t, filepath.Join(outside, "pkg", "sub", "h"), "h")
	if err := os.Rename(filepath.Join(outside, "pkg"), filepath.Join(root, "pkg")); err != nil {
		t.Fatal(err)
	}
	until(t, w, func(e []Event) bool {
		return has(e, Create, "pkg") >= 0 && has(e, Create, "pkg/sub") >= 0 && has(e, Create, "pkg/sub/h") >= 0
	})
	write(t, filepath.Join(root, "pkg", "sub", "h"), "again")
	until(t, w, seen(Write, "pkg/sub/h"))

	// Renamed within the tree: its watches follow, under the new path.
	if err := os.Rename(filepath.Join(root, "new"), filepath.Join(root, "renamed")); err != nil {
		t.Fatal(err)
	}
	got = until(t, w, seen(Rename, "renamed"))
	if e := got[has(got, Rename, "renamed")]; e.From != "new" || !e.IsDir {
		t.Fatalf("rename: %+v", e)
	}
	write(t, filepath.Join(root, "renamed", "deeper", "deepest", "g"), "g2")
	until(t, w, seen(Write, "renamed/deeper/deepest/g"))

	// Moved out: removed, and no longer watched.
	before := w.Watches()
	if err := os.Rename(filepath.Join(root, "renamed"), filepath.Join(outside, "gone")); err != nil {
		t.Fatal(err)
	}
	got = until(t, w, seen(Remove, "renamed"))
	if !got[has(got, Remove, "renamed")].IsDir {
		t.Fatalf("remove: %s", show(got))
	}
	testsupport.Eventually(t, "the moved-out tree unwatched", 15*time.Second, func() bool { return w.Watches() == before-3 })
	write(t, filepath.Join(outside, "gone", "deeper", "f"), "outside now")
	if got := during(w, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("events from outside the tree: %s", show(got))
	}

	// Removed: its watch goes with it.
	before = w.Watches()
	if err := os.RemoveAll(filepath.Join(root, "old")); err != nil {
		t.Fatal(err)
	}
	until(t, w, func(e []Event) bool { return has(e, Remove, "old/x") >= 0 && has(e, Remove, "old") >= 0 })
	testsupport.Eventually(t, "the removed directory unwatched", 15*time.Second, func() bool { return w.Watches() == before-1 })
}

func TestNotRecursive(t *testing.T) {
	root := tree(t)
	mkdir(t, filepath.Join(root, "sub"))
	w := open(t, root, false, Defaults)
	write(t, filepath.Join(root, "sub", "x"), "x")
	mkdir(t, filepath.Join(root, "other"))
	write(t, filepath.Join(root, "other", "y"), "y")
	write(t, filepath.Join(root, "top"), "top")
	got := until(t, w, seen(Write, "top"))
	got = append(got, during(w, 200*time.Millisecond)...)
	if has(got, Create, "other") < 0 || w.Watches() != 1 {
		t.Fatalf("watches %d, events %s", w.Watches(), show(got))
	}
	for _, e := range got {
		if strings.Contains(e.Path, "/") {
			t.Fatalf("an event from below the root: %s", show(got))
		}
	}
}

func TestExcludes(t *testing.T) {
	root := tree(t)
	mkdir(t, filepath.Join(root, "node_modules", "left-pad"))
	mkdir(t, filepath.Join(root, "src", "build"))
	w := open(t, root, true, Defaults, "node_modules", "*.pyc", "src/build")
	if w.Watches() != 2 {
		t.Fatalf("watches %d, want 2 (the root and src)", w.Watches())
	}
	write(t, filepath.Join(root, "node_modules", "left-pad", "index.js"), "x")
	write(t, filepath.Join(root, "src", "build", "out"), "x")
	write(t, filepath.Join(root, "src", "a.pyc"), "x")
	write(t, filepath.Join(root, "src", "a.py"), "x")
	got := until(t, w, seen(Write, "src/a.py"))
	got = append(got, during(w, 200*time.Millisecond)...)
	for _, e := range got {
		if e.Path != "src/a.py" {
			t.Fatalf("an excluded path reported: %s", show(got))
		}
	}
	// Renamed from an excluded name: it appears; to one: it goes.
	if err := os.Rename(filepath.Join(root, "src", "a.pyc"), filepath.Join(root, "src", "b.py")); err != nil {
		t.Fatal(err)
	}
	until(t, w, seen(Create, "src/b.py"))
	if err := os.Rename(filepath.Join(root, "src", "b.py"), filepath.Join(root, "src", "b.pyc")); err != nil {
		t.Fatal(err)
	}
	until(t, w, seen(Remove, "src/b.py"))
	for _, bad := range [][]string{{""}, {"["}, {strings.Repeat("x", MaxExcludePattern+1)}, make([]string, MaxExcludes+1)} {
		if _, err := Open(Options{Root: root, Excludes: bad}, Defaults, nil); !errors.Is(err, ErrExcludes) {
			t.Errorf("excludes %q: %v", bad, err)
		}
	}
}

func TestSymlinksAreNotFollowed(t *testing.T) {
	root := tree(t)
	outside := tree(t)
	mkdir(t, filepath.Join(outside, "secret"))
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	w := open(t, root, true, Defaults)
	if w.Watches() != 1 {
		t.Fatalf("watches %d: a symlink was followed", w.Watches())
	}
	// A link made later, to a directory outside: reported (it is an entry), never watched.
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "later")); err != nil {
		t.Fatal(err)
	}
	got := until(t, w, seen(Create, "later"))
	if got[has(got, Create, "later")].IsDir {
		t.Fatalf("a link is not a directory: %s", show(got))
	}
	write(t, filepath.Join(outside, "f"), "x")
	write(t, filepath.Join(outside, "secret", "g"), "x")
	if got := during(w, 300*time.Millisecond); len(got) != 0 || w.Watches() != 1 {
		t.Fatalf("events from outside the root (watches %d): %s", w.Watches(), show(got))
	}
	// A directory swapped for a link between its create and its watch: the walk never follows
	// it (O_NOFOLLOW, one component at a time).
	if fd, ok := w.watchDirForTest("link"); ok || fd >= 0 {
		t.Fatal("openDir followed a symlink")
	}
}

// watchDirForTest runs watchDir as the reader would.
func (w *Watcher) watchDirForTest(rel string) (int, bool) {
	var fd int
	var ok bool
	asUser(w.user, func() { fd, ok = w.openOnly(rel) })
	return fd, ok
}

func (w *Watcher) openOnly(rel string) (int, bool) {
	fd, err := w.openDir(rel)
	if err != nil {
		return -1, false
	}
	syscall.Close(fd)
	return fd, true
}

func TestTheWatchCap(t *testing.T) {
	root := tree(t)
	for i := range 5 {
		mkdir(t, filepath.Join(root, fmt.Sprintf("d%d", i)))
	}
	cfg := Defaults
	cfg.MaxDirs = 3
	w := open(t, root, true, cfg)
	if w.Watches() != 3 {
		t.Fatalf("watches %d, want the cap", w.Watches())
	}
	got := until(t, w, func(e []Event) bool { return len(e) > 0 })
	if got[0].Type != Overflow || got[0].Reason != WatchLimit || got[0].Path == "" {
		t.Fatalf("want a watch_limit overflow naming a directory: %s", show(got))
	}
	// Once reported, it is not repeated for every directory that does not fit.
	mkdir(t, filepath.Join(root, "d9"))
	got = until(t, w, seen(Create, "d9"))
	got = append(got, during(w, 200*time.Millisecond)...)
	if has(got, Overflow, "d9") >= 0 {
		t.Fatalf("watch_limit repeated: %s", show(got))
	}
	// Watches gone make room (and the limit is reported again when hit again).
	for i := range 5 {
		if err := os.Remove(filepath.Join(root, fmt.Sprintf("d%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	until(t, w, seen(Remove, "d4"))
	testsupport.Eventually(t, "room again", 15*time.Second, func() bool { return w.Watches() == 1 })
	if err := os.Remove(filepath.Join(root, "d9")); err != nil { // never watched
		t.Fatal(err)
	}
	for _, name := range []string{"e1", "e2", "e3"} {
		mkdir(t, filepath.Join(root, name))
	}
	got = until(t, w, func(e []Event) bool { return has(e, Create, "e3") >= 0 && has(e, Overflow, "e3") >= 0 })
	if w.Watches() != 3 || has(got, Overflow, "e1") >= 0 || has(got, Overflow, "e2") >= 0 {
		t.Fatalf("watches %d: %s", w.Watches(), show(got))
	}
}

func TestASlowReaderHasABoundedQueue(t *testing.T) {
	root := tree(t)
	cfg := Defaults
	cfg.MaxEvents = 100
	w := open(t, root, true, cfg)
	for i := range 500 {
		write(t, filepath.Join(root, fmt.Sprintf("f%03d", i)), "x")
	}
	testsupport.Eventually(t, "the queue full", 15*time.Second, func() bool { n, _ := w.Waiting(); return n == 100 })
	time.Sleep(100 * time.Millisecond)
	if n, _ := w.Waiting(); n != 100 {
		t.Fatalf("%d events wait (cap 100)", n)
	}
	got := w.Next(nil)
	if len(got) != 101 || got[100].Type != Overflow || got[100].Reason != LostQueue {
		t.Fatalf("want the 100 kept and an overflow last: %d events, last %+v", len(got), got[len(got)-1])
	}
	if got[0].Path != "f000" {
		t.Fatalf("the oldest are kept: %s", show(got[:3]))
	}
	// Afterwards events come again.
	write(t, filepath.Join(root, "after"), "x")
	until(t, w, seen(Write, "after"))
}

func TestMemoryStaysBoundedWhileNobodyReads(t *testing.T) {
	root := tree(t)
	w := open(t, root, true, Defaults) // 4096 events, 512 KiB of paths at most
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	long := strings.Repeat("n", 200)
	for i := range 20000 {
		name := filepath.Join(root, fmt.Sprintf("%s%05d", long, i))
		write(t, name, "x")
		os.Remove(name)
	}
	time.Sleep(200 * time.Millisecond)
	n, bytes := w.Waiting()
	if n > Defaults.MaxEvents || bytes > Defaults.MaxBytes {
		t.Fatalf("%d events of %d bytes wait", n, bytes)
	}
	if grown := int64(heap()) - int64(before); grown > 4<<20 {
		t.Fatalf("the heap grew by %d bytes for 80000 events nobody read", grown)
	}
	got := w.Next(nil)
	if last := got[len(got)-1]; last.Type != Overflow || last.Reason != LostQueue {
		t.Fatalf("no overflow: %+v", last)
	}
}

func TestKernelOverflowIsReported(t *testing.T) {
	w := open(t, tree(t), true, Defaults)
	var pending *moved
	w.handle(inotifyEvent{wd: -1, mask: syscall.IN_Q_OVERFLOW}, &pending)
	got := until(t, w, func(e []Event) bool { return len(e) > 0 })
	if len(got) != 1 || got[0].Type != Overflow || got[0].Reason != LostKernel {
		t.Fatalf("%s", show(got))
	}
}

func TestTheRootGoingAwayEndsTheWatch(t *testing.T) {
	parent := tree(t)
	root := filepath.Join(parent, "root")
	mkdir(t, filepath.Join(root, "sub"))
	w := open(t, root, true, Defaults)
	write(t, filepath.Join(root, "sub", "f"), "x")
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	got := until(t, w, seen(Remove, "sub"))
	if rest := during(w, 30*time.Second); w.Reason() != EndRemoved {
		t.Fatalf("ended %q after %s %s", w.Reason(), show(got), show(rest))
	}

	mkdir(t, root)
	w = open(t, root, true, Defaults)
	if err := os.Rename(root, filepath.Join(parent, "elsewhere")); err != nil {
		t.Fatal(err)
	}
	during(w, 30*time.Second)
	if w.Reason() != EndMoved {
		t.Fatalf("ended %q", w.Reason())
	}
}

func TestTheUsersPermissions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (as sandboxd is)")
	}
	private := t.TempDir() // 0700, root's
	if _, err := Open(Options{Root: private, User: &someone}, Defaults, nil); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("a root the user cannot read: %v", err)
	}
	root := tree(t)
	mkdir(t, filepath.Join(root, "closed"))
	os.Chmod(filepath.Join(root, "closed"), 0o700)
	mkdir(t, filepath.Join(root, "open"))
	w, err := Open(Options{Root: root, Recursive: true, User: &someone}, Defaults, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Watches() != 2 {
		t.Fatalf("watches %d, want 2 (the root and open; closed is not the user's to read)", w.Watches())
	}
	write(t, filepath.Join(root, "closed", "f"), "x")
	write(t, filepath.Join(root, "open", "g"), "x")
	got := until(t, w, seen(Write, "open/g"))
	if has(got, Write, "closed/f") >= 0 {
		t.Fatalf("%s", show(got))
	}
	// sandboxd's own identity is root's again on every thread.
	if uid, _ := fsid.Get(); uid != 0 {
		t.Fatal("the fsuid stayed the user's")
	}
	root2, err := Open(Options{Root: root, Recursive: true}, Defaults, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer root2.Close()
	if root2.Watches() != 3 {
		t.Fatalf("root watches %d, want 3", root2.Watches())
	}
	if _, err := Open(Options{Root: filepath.Join(root, "open", "g")}, Defaults, nil); !errors.Is(err, ErrNotDir) {
		t.Fatalf("a file: %v", err)
	}
	if _, err := Open(Options{Root: "relative"}, Defaults, nil); !errors.Is(err, ErrBadRoot) {
		t.Fatalf("a relative root: %v", err)
	}
	if _, err := Open(Options{Root: filepath.Join(root, "missing")}, Defaults, nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a missing root: %v", err)
	}
}

func fds(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestCloseFreesTheDescriptors(t *testing.T) {
	root := tree(t)
	for i := range 20 {
		mkdir(t, filepath.Join(root, fmt.Sprintf("d%d", i), "e"))
	}
	warm, err := Open(Options{Root: root}, Defaults, nil) // the runtime's poller, made on first use
	if err != nil {
		t.Fatal(err)
	}
	warm.Close()
	before := fds(t)
	table := NewTable(Config{MaxWatches: 2, MaxDirs: 100, MaxEvents: 10, MaxBytes: 1 << 10})
	a, err := table.Open(Options{Root: root, Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := table.Open(Options{Root: root, Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := table.Open(Options{Root: root}); !errors.Is(err, ErrFull) {
		t.Fatalf("a third watch: %v", err)
	}
	if fds(t) != before+2 {
		t.Fatalf("%d descriptors open, want %d: one per watch, none per directory", fds(t), before+2)
	}
	a.Close()
	b.Close()
	a.Close()
	if after := fds(t); after != before {
		t.Fatalf("%d descriptors before, %d after", before, after)
	}
	c, err := table.Open(Options{Root: root}) // the slots are back
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
