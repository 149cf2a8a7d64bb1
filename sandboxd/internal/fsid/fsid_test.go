package fsid

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"vibebox.dev/sandboxd/internal/testsupport"
	"vibebox.dev/sandboxd/internal/users"
)

// The users of these tests (uids and gids no other package's tests use).
var (
	user  = users.User{UID: 61040, GID: 61040, Groups: []int{61040}, Home: "/"}
	other = users.User{UID: 61041, GID: 61041, Groups: []int{61041, 61042}, Home: "/"}
)

// sandboxd's own identity, as every thread of the process had it before any test ran.
var own string

// The main goroutine keeps the main thread: a goroutine that ends locked on it would not end it
// (the runtime parks the main thread for good instead, as unusable as an ended one), and the
// tests watch threads end.
func init() { runtime.LockOSThread() }

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		// Only root can take another user's ids (the toolchain container runs the tests as root).
		os.Stdout.WriteString("fsid: skipped, needs root (as sandboxd is)\n")
		os.Exit(0)
	}
	own = identity(strconv.Itoa(os.Getpid()))
	os.Exit(m.Run())
}

// identity answers a thread's file system ids, supplementary groups and effective capabilities,
// as the kernel shows them.
func identity(tid string) string {
	data, err := os.ReadFile("/proc/self/task/" + tid + "/status")
	if err != nil {
		return "gone"
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		name, value, _ := strings.Cut(line, ":")
		fields := strings.Fields(value)
		switch name {
		case "Uid", "Gid":
			out = append(out, name+" "+fields[len(fields)-1]) // the fs id is the last one
		case "Groups", "CapEff":
			out = append(out, name+" "+strings.Join(fields, ","))
		}
	}
	return strings.Join(out, "; ")
}

// everyThreadIsOurs fails the test unless every thread of the process has sandboxd's identity.
func everyThreadIsOurs(t *testing.T) {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if got := identity(task.Name()); got != own && got != "gone" {
			t.Fatalf("thread %s: %s, not sandboxd's %s", task.Name(), got, own)
		}
	}
}

// threadEnds fails the test unless thread tid ends.
func threadEnds(t *testing.T, tid int) {
	t.Helper()
	testsupport.Eventually(t, "thread "+strconv.Itoa(tid)+" ends", 10*time.Second, func() bool {
		_, err := os.Stat("/proc/self/task/" + strconv.Itoa(tid))
		return errors.Is(err, os.ErrNotExist)
	})
}

// dir answers a directory everyone may enter, owned by owner and of the given mode.
func dir(t *testing.T, owner users.User, mode os.FileMode) string {
	t.Helper()
	top := t.TempDir()
	for _, d := range []string{top, filepath.Dir(top)} { // t.TempDir's are 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := filepath.Join(top, "d")
	if err := os.Mkdir(d, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	if err := os.Chown(d, owner.UID, owner.GID); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestWhatAsCreatesIsTheUsers(t *testing.T) {
	d := dir(t, user, 0o755)
	p := filepath.Join(d, "made")
	if err := As(user, func() error { return os.WriteFile(p, []byte("x"), 0o644) }); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if int(st.Uid) != user.UID || int(st.Gid) != user.GID {
		t.Fatalf("owned by %d:%d", st.Uid, st.Gid)
	}
	// Root's directory: the user may not write there (root could).
	rootDir := dir(t, users.User{}, 0o755)
	err := As(user, func() error { return os.WriteFile(filepath.Join(rootDir, "f"), nil, 0o644) })
	if !errors.Is(err, os.ErrPermission) {
		t.Fatalf("the user wrote into root's directory: %v", err)
	}
	everyThreadIsOurs(t)
}

func TestAsHasTheUsersGroupsOnly(t *testing.T) {
	d := dir(t, users.User{}, 0o755)
	secret := filepath.Join(d, "for-61042")
	if err := os.WriteFile(secret, []byte("x"), 0o040); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(secret, 0o040); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(secret, 0, 61042); err != nil {
		t.Fatal(err)
	}
	read := func() error { _, err := os.ReadFile(secret); return err }
	if err := As(other, read); err != nil {
		t.Fatalf("a supplementary group's member cannot read: %v", err)
	}
	if err := As(user, read); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("a user outside the group read it: %v", err)
	}
	// No groups: the primary one alone.
	if err := os.Chown(secret, 0, user.GID); err != nil {
		t.Fatal(err)
	}
	if err := As(users.User{UID: user.UID, GID: user.GID}, read); err != nil {
		t.Fatalf("the primary group's member cannot read: %v", err)
	}
	everyThreadIsOurs(t)
}

// Many at once, over several threads and users: every thread gets sandboxd's identity back, its
// supplementary groups included (not the first user's).
func TestEveryThreadIsSandboxdsAgain(t *testing.T) {
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := []users.User{user, other}[i%2]
			As(u, func() error {
				if uid, gid := Get(); uid != u.UID || gid != u.GID {
					t.Errorf("inside As: %d:%d", uid, gid)
				}
				time.Sleep(time.Millisecond)
				return nil
			})
		}()
	}
	wg.Wait()
	everyThreadIsOurs(t)
	if _, err := os.ReadFile("/proc/self/status"); err != nil {
		t.Fatal(err)
	}
}

func TestIdsThatCannotBeTakenRunNothing(t *testing.T) {
	for _, u := range []users.User{
		{UID: 1<<32 - 1, GID: user.GID},                     // -1: setfsuid takes it without a word, and changes nothing
		{UID: user.UID, GID: 1<<32 - 1},                     // likewise setfsgid
		{UID: user.UID, GID: user.GID, Groups: many(70000)}, // over NGROUPS_MAX: setgroups refuses
	} {
		ran := false
		if err := As(u, func() error { ran = true; return nil }); !errors.Is(err, ErrCredentials) || ran {
			t.Fatalf("%d:%d with %d groups: %v, ran %v", u.UID, u.GID, len(u.Groups), err, ran)
		}
	}
	everyThreadIsOurs(t)
}

func many(n int) []int {
	groups := make([]int, n)
	for i := range groups {
		groups[i] = 100000 + i
	}
	return groups
}

// A thread whose ids cannot be put back (here: it lost CAP_SETGID, so its groups stay the
// user's) is never handed back: the runtime ends it. f's answer stands.
func TestAThreadThatCannotBeRestoredEnds(t *testing.T) {
	tid := 0
	err := As(user, func() error {
		tid = syscall.Gettid()
		return dropSetgid()
	})
	if err != nil {
		t.Fatal(err)
	}
	threadEnds(t, tid)
	everyThreadIsOurs(t)
}

// dropSetgid takes CAP_SETGID out of the calling thread's effective capabilities (capset is per
// thread).
func dropSetgid() error {
	header := struct {
		version uint32
		pid     int32
	}{0x20080522, 0} // _LINUX_CAPABILITY_VERSION_3, this thread
	var data [2]struct{ effective, permitted, inheritable uint32 }
	if _, _, errno := syscall.RawSyscall(syscall.SYS_CAPGET, uintptr(unsafe.Pointer(&header)), uintptr(unsafe.Pointer(&data[0])), 0); errno != 0 {
		return errno
	}
	data[0].effective &^= 1 << 6 // CAP_SETGID
	if _, _, errno := syscall.RawSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&header)), uintptr(unsafe.Pointer(&data[0])), 0); errno != 0 {
		return errno
	}
	return nil
}

func TestAPanicIsAnErrorAndEndsItsThread(t *testing.T) {
	tid := 0
	err := As(user, func() error { tid = syscall.Gettid(); panic("boom") })
	if !errors.Is(err, errPanic) || !strings.Contains(err.Error(), "boom") {
		t.Fatal(err)
	}
	threadEnds(t, tid)
	everyThreadIsOurs(t)
}

func TestLockedPutsTheIdsBack(t *testing.T) {
	for range 10 {
		Locked(func() bool {
			if !Set(user.UID, user.GID) || !Set(other.UID, other.GID) {
				t.Error("Set did not take")
			}
			return true
		})
	}
	everyThreadIsOurs(t)
	// false: the thread is not handed back, whatever its ids.
	tid := 0
	Locked(func() bool { tid = syscall.Gettid(); return false })
	threadEnds(t, tid)
	everyThreadIsOurs(t)
}
