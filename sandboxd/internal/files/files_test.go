package files

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"vibebox.dev/sandboxd/internal/users"
)

// The sandbox user of these tests (a uid no other package's tests use).
var user = users.User{UID: 61030, GID: 61030, Groups: []int{61030}, Home: "/"}

func ok() error { return nil }

// box answers a directory of the user's, inside a root-owned one nobody else may write.
func box(t *testing.T) string {
	t.Helper()
	top := t.TempDir()
	for _, d := range []string{top, filepath.Dir(top)} { // t.TempDir's are 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(top, "box")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, user.UID, user.GID); err != nil {
		t.Fatal(err)
	}
	return dir
}

// rootFile makes a root-owned file (mode 0644) holding data.
func rootFile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil {
		return ""
	}
	return "other: " + err.Error()
}

func read(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func owner(t *testing.T, p string) (int, uint32) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return int(st.Uid), st.Mode & 0o7777
}

func TestAsRunsAsTheUserAndPutsRootBack(t *testing.T) {
	dir := box(t)
	secret := filepath.Join(filepath.Dir(dir), "secret")
	if err := os.WriteFile(secret, []byte("token"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 50 { // many threads, many times: none stays the user's
		err := As(user, func() error { _, err := os.ReadFile(secret); return err })
		if code(Classify(err, secret)) != Denied {
			t.Fatalf("the user read a root-only file: %v", err)
		}
		if _, err := os.ReadFile(secret); err != nil {
			t.Fatalf("root lost its access after As: %v", err)
		}
	}
}

func TestWriteIsTheUsersAndAtomic(t *testing.T) {
	dir := box(t)
	target := filepath.Join(dir, "a/b/f.bin")
	info, err := Write(user, target, 0o750, strings.NewReader("hello"), 5, ok)
	if err != nil || info.Size != 5 || info.Mode != 0o750 {
		t.Fatalf("%+v %v", info, err)
	}
	if uid, mode := owner(t, target); uid != user.UID || mode != 0o750 {
		t.Fatalf("owner %d mode %o", uid, mode)
	}
	if uid, mode := owner(t, filepath.Join(dir, "a")); uid != user.UID || mode != 0o755 {
		t.Fatalf("parent: owner %d mode %o", uid, mode)
	}
	// a failed verification, a short body: the old content stays, no temporary file is left
	_, err = Write(user, target, 0o644, strings.NewReader("new!!"), 5, func() error { return errors.New("bad signature") })
	if err == nil || read(t, target) != "hello" {
		t.Fatalf("%v %q", err, read(t, target))
	}
	_, err = Write(user, target, 0o644, strings.NewReader("ne"), 5, ok)
	if !IsReadError(err) || read(t, target) != "hello" {
		t.Fatalf("%v %q", err, read(t, target))
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "a/b"))
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
	// replaced whole
	if _, err := Write(user, target, 0o644, strings.NewReader("second"), 6, ok); err != nil || read(t, target) != "second" {
		t.Fatal(err)
	}
}

func TestWriteRefusesWhatTheUserMayNotChange(t *testing.T) {
	dir := box(t)
	top := filepath.Dir(dir)
	protected := filepath.Join(top, "protected")
	os.Mkdir(protected, 0o755)
	rootFile(t, filepath.Join(protected, "bin"), "original")
	rootFile(t, filepath.Join(dir, "root-owned"), "root's") // in the user's directory, not the user's file
	os.Symlink(protected, filepath.Join(dir, "link-dir"))
	os.Symlink(filepath.Join(protected, "bin"), filepath.Join(dir, "link-file"))
	cases := map[string]string{
		filepath.Join(protected, "new"):     Denied,
		filepath.Join(protected, "bin"):     Denied,
		filepath.Join(dir, "root-owned"):    Denied,
		filepath.Join(dir, "link-dir/bin"):  Denied,
		filepath.Join(dir, "link-dir/new"):  Denied,
		filepath.Join(dir, "link-file"):     Denied, // written through, as the user's shell would
		dir:                                 Conflict,
		filepath.Join(dir, "root-owned/x"):  Conflict, // a file as a directory
		"/proc/self/environ":                Denied,
		filepath.Join(top, "nope/deep/new"): Denied,
	}
	for p, want := range cases {
		_, err := Write(user, p, 0o644, strings.NewReader("pwned"), 5, ok)
		if code(err) != want {
			t.Errorf("%s: %q, want %s", p, code(err), want)
		}
	}
	if read(t, filepath.Join(protected, "bin")) != "original" || read(t, filepath.Join(dir, "root-owned")) != "root's" {
		t.Fatal("a protected file changed")
	}
	if _, err := os.Lstat(filepath.Join(dir, "link-file")); err != nil {
		t.Fatal("the symlink went")
	}
}

func TestClassify(t *testing.T) {
	for errno, want := range map[syscall.Errno]string{
		syscall.ENOSPC: DiskFull, syscall.EDQUOT: DiskFull, syscall.ENOENT: NotFound, syscall.EACCES: Denied,
		syscall.EROFS: Denied, syscall.EEXIST: Conflict, syscall.ENOTEMPTY: Conflict,
	} {
		if got := Classify(&os.PathError{Op: "write", Path: "/x", Err: errno}, "/x").Code; got != want {
			t.Errorf("%v: %s, want %s", errno, got, want)
		}
	}
}

func TestOpenReadsAsTheUser(t *testing.T) {
	dir := box(t)
	secret := filepath.Join(filepath.Dir(dir), "secret")
	os.WriteFile(secret, []byte("token"), 0o600)
	os.Symlink(secret, filepath.Join(dir, "to-secret"))
	for p, want := range map[string]string{
		secret: Denied, filepath.Join(dir, "to-secret"): Denied, "/proc/1/environ": Denied, "/proc/self/status": Denied,
		"/proc/self/root/" + secret: Denied, dir: Conflict, filepath.Join(dir, "missing"): NotFound,
	} {
		f, _, err := Open(user, p)
		if f != nil {
			f.Close()
		}
		if code(err) != want {
			t.Errorf("%s: %q, want %s", p, code(err), want)
		}
	}
	Write(user, filepath.Join(dir, "mine"), 0o600, strings.NewReader("mine"), 4, ok)
	os.Symlink("mine", filepath.Join(dir, "link"))
	f, info, err := Open(user, filepath.Join(dir, "link"))
	if err != nil || info.Size != 4 || info.Type != "file" {
		t.Fatalf("%+v %v", info, err)
	}
	data, _ := io.ReadAll(f)
	f.Close()
	if string(data) != "mine" {
		t.Fatal(string(data))
	}
}

func TestListStatMkdirMoveDelete(t *testing.T) {
	dir := box(t)
	if err := Mkdir(user, filepath.Join(dir, "a/b")); err != nil {
		t.Fatal(err)
	}
	Write(user, filepath.Join(dir, "a/b/f.txt"), 0o644, strings.NewReader("12345"), 5, ok)
	os.Symlink("/", filepath.Join(dir, "a/root"))
	entries, truncated, err := List(user, filepath.Join(dir, "a"), true, 100)
	if err != nil || truncated {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name+":"+e.Type)
	}
	if strings.Join(names, " ") != "b:directory f.txt:file root:symlink" || entries[2].Link != "/" {
		t.Fatalf("%v", names) // the symlink to / is listed, not followed
	}
	if _, truncated, _ := List(user, filepath.Join(dir, "a"), true, 2); !truncated {
		t.Fatal("not truncated")
	}
	if entries, _, _ := List(user, filepath.Join(dir, "a/b/f.txt"), false, 10); len(entries) != 1 || entries[0].Size != 5 {
		t.Fatalf("a file lists itself: %v", entries)
	}
	if _, _, err := List(user, filepath.Join(dir, "none"), false, 10); code(err) != NotFound {
		t.Fatal(err)
	}
	if info, err := Stat(user, filepath.Join(dir, "a/root"), true); err != nil || info.Type != "directory" {
		t.Fatal(info, err)
	}
	if err := Mkdir(user, filepath.Join(dir, "a/b/f.txt/x")); code(err) != Conflict {
		t.Fatal(err)
	}
	if err := Mkdir(user, "/etc/vibebox-test"); code(err) != Denied {
		t.Fatal(err)
	}
	// move: no overwrite without asking; missing parents made
	Write(user, filepath.Join(dir, "other"), 0o644, strings.NewReader("x"), 1, ok)
	if err := Move(user, filepath.Join(dir, "a/b/f.txt"), filepath.Join(dir, "c/g.txt"), false); err != nil {
		t.Fatal(err)
	}
	if err := Move(user, filepath.Join(dir, "other"), filepath.Join(dir, "c/g.txt"), false); code(err) != Conflict {
		t.Fatal(err)
	}
	if err := Move(user, filepath.Join(dir, "other"), filepath.Join(dir, "c/g.txt"), true); err != nil || read(t, filepath.Join(dir, "c/g.txt")) != "x" {
		t.Fatal(err)
	}
	if err := Move(user, filepath.Join(dir, "none"), filepath.Join(dir, "z"), false); code(err) != NotFound {
		t.Fatal(err)
	}
	rootFile(t, filepath.Join(filepath.Dir(dir), "rootfile"), "r")
	if err := Move(user, filepath.Join(filepath.Dir(dir), "rootfile"), filepath.Join(dir, "stolen"), false); code(err) != Denied {
		t.Fatal(err)
	}
	// delete: a directory only recursively; never through a symlink
	outside := filepath.Join(filepath.Dir(dir), "outside")
	os.Mkdir(outside, 0o777)
	os.WriteFile(filepath.Join(outside, "keep"), []byte("k"), 0o666)
	os.Symlink(outside, filepath.Join(dir, "a/out"))
	if err := Delete(user, filepath.Join(dir, "a"), false); code(err) != Conflict {
		t.Fatal(err)
	}
	if err := Delete(user, filepath.Join(dir, "a"), true); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(outside, "keep")) != "k" {
		t.Fatal("deleted through a symlink")
	}
	if err := Delete(user, filepath.Join(filepath.Dir(dir), "rootfile"), false); code(err) != Denied {
		t.Fatal(err)
	}
	if err := Delete(user, filepath.Join(dir, "a"), false); code(err) != NotFound {
		t.Fatal(err)
	}
}

type entry struct {
	name, data, link string
	kind             byte
	mode             int64
}

func tarOf(entries ...entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		kind := e.kind
		if kind == 0 {
			kind = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: kind, Linkname: e.link, Size: int64(len(e.data)), Mode: mode})
		tw.Write([]byte(e.data))
	}
	tw.Close()
	return buf.Bytes()
}

func TestUntarAndTarRoundTrip(t *testing.T) {
	dir := box(t)
	archive := tarOf(
		entry{name: "src/", kind: tar.TypeDir, mode: 0o750},
		entry{name: "src/run.sh", data: "#!/bin/sh\n", mode: 0o755},
		entry{name: "./README", data: "hi", mode: 0o600},
		entry{name: "deep/er/f", data: "deep"},
		entry{name: "hard", link: "README", kind: tar.TypeLink},
		entry{name: "soft", link: "/etc/passwd", kind: tar.TypeSymlink}, // a symlink out is fine; going through it is not
	)
	n, err := Untar(user, filepath.Join(dir, "project"), bytes.NewReader(archive), 100, ok)
	if err != nil || n != 6 {
		t.Fatal(n, err)
	}
	if read(t, filepath.Join(dir, "project/hard")) != "hi" || read(t, filepath.Join(dir, "project/deep/er/f")) != "deep" {
		t.Fatal("content")
	}
	for p, want := range map[string]uint32{"project/src": 0o750, "project/src/run.sh": 0o755, "project/README": 0o600, "project/deep": 0o755} {
		if uid, mode := owner(t, filepath.Join(dir, p)); uid != user.UID || mode != want {
			t.Errorf("%s: uid %d mode %o", p, uid, mode)
		}
	}
	var out bytes.Buffer
	if err := Tar(user, filepath.Join(dir, "project"), &out); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&out)
	got := map[string]string{}
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		data, _ := io.ReadAll(tr)
		got[hdr.Name] = string(data) + hdr.Linkname
	}
	if got["project/README"] != "hi" || got["project/soft"] != "/etc/passwd" || got["project/src/run.sh"] != "#!/bin/sh\n" {
		t.Fatalf("%v", got)
	}
	if err := Tar(user, filepath.Join(filepath.Dir(dir), "none"), &out); code(err) != NotFound {
		t.Fatal(err)
	}
}

func TestUntarConfinesEveryEntry(t *testing.T) {
	dir := box(t)
	top := filepath.Dir(dir)
	outside := filepath.Join(top, "outside")
	os.Mkdir(outside, 0o777) // writable by the user: only the confinement keeps entries out
	os.Symlink(outside, filepath.Join(dir, "planted"))
	cases := map[string][]byte{
		"dotdot":          tarOf(entry{name: "fine", data: "ok"}, entry{name: "../escape", data: "x"}),
		"inner dotdot":    tarOf(entry{name: "ok/../../escape", data: "x"}),
		"absolute":        tarOf(entry{name: "/escape", data: "x"}),
		"through symlink": tarOf(entry{name: "l", link: outside, kind: tar.TypeSymlink}, entry{name: "l/escape", data: "x"}),
		"symlink dir":     tarOf(entry{name: "l2", link: "..", kind: tar.TypeSymlink}, entry{name: "l2/escape/", kind: tar.TypeDir}),
		"planted symlink": tarOf(entry{name: "planted/escape", data: "x"}),
		"hard link out":   tarOf(entry{name: "h", link: "../outside/keep", kind: tar.TypeLink}),
		"hard via link":   tarOf(entry{name: "s", link: top, kind: tar.TypeSymlink}, entry{name: "h", link: "s/outside/keep", kind: tar.TypeLink}),
		"device":          tarOf(entry{name: "dev", kind: tar.TypeChar}),
		"not a tar":       []byte(strings.Repeat("not a tar ", 100)),
	}
	os.WriteFile(filepath.Join(outside, "keep"), []byte("k"), 0o666)
	for name, archive := range cases {
		_, err := Untar(user, dir, bytes.NewReader(archive), 100, ok)
		if code(err) != BadArchive {
			t.Errorf("%s: %q", name, code(err))
		}
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 1 {
		t.Fatalf("something landed outside: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(top, "escape")); err == nil {
		t.Fatal("escaped")
	}
	many := tarOf(entry{name: "1", data: "1"}, entry{name: "2", data: "2"}, entry{name: "3", data: "3"})
	if _, err := Untar(user, dir, bytes.NewReader(many), 2, ok); code(err) != TooLarge {
		t.Fatal(err)
	}
	rootFile(t, filepath.Join(dir, "root-owned"), "root's")
	if _, err := Untar(user, dir, bytes.NewReader(tarOf(entry{name: "root-owned", data: "pwned"})), 10, ok); code(err) != Denied {
		t.Fatal(err)
	}
	if read(t, filepath.Join(dir, "root-owned")) != "root's" {
		t.Fatal("replaced")
	}
	if _, err := Untar(user, filepath.Join(top, "not-mine"), bytes.NewReader(many), 10, ok); code(err) != Denied {
		t.Fatal(err)
	}
}

func TestAPanicIsAnError(t *testing.T) {
	err := As(user, func() error { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatal(err)
	}
	if _, err := os.ReadFile("/proc/self/status"); err != nil {
		t.Fatal(err)
	}
}
