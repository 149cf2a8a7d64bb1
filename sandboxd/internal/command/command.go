// Package command runs commands (to completion, Run, or with their output read as it comes,
// Start) and ends them, with the semantics of the Python exec agent sandboxd replaced.
//
// A command runs in its own session with VIBEBOX_EXEC_ID=<id> in its environment. It is done
// when it has exited AND its output is closed (a background child still holding stdout keeps it
// running, as with `$(...)`). Output is kept up to a limit per stream and counted beyond. A
// signalled command exits 128 + the signal; an exit 137 during which the cgroup's OOM-kill count
// grew is an OOM kill. At the deadline every process of the command is ended (proc.End).
package command

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"vibebox.dev/sandboxd/internal/proc"
	"vibebox.dev/sandboxd/internal/pty"
	"vibebox.dev/sandboxd/internal/threads"
	"vibebox.dev/sandboxd/internal/users"
)

// Where the cgroup counts OOM kills (v2, then v1).
var oomFiles = []string{"/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"}

// The signals a client may send a command.
var Signals = map[string]syscall.Signal{
	"INT": syscall.SIGINT, "TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL, "HUP": syscall.SIGHUP,
	"QUIT": syscall.SIGQUIT, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
	"STOP": syscall.SIGSTOP, "CONT": syscall.SIGCONT,
}

// signalNames names the standard signals (SignalName).
var signalNames = [...]string{
	1: "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE",
	"ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ",
	"VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
}

// SignalName answers a signal's name without SIG ("KILL"), or its number for a real-time one.
func SignalName(sig syscall.Signal) string {
	if sig > 0 && int(sig) < len(signalNames) {
		return signalNames[sig]
	}
	return strconv.Itoa(int(sig))
}

// Request is one command.
type Request struct {
	ExecID      string
	Argv        []string
	Env         map[string]string
	Workdir     string // "": sandboxd's own
	Stdin       []byte // nil: /dev/null (Run)
	Interactive bool   // Start: stdin is a pipe the caller writes (Live.Stdin); else /dev/null
	// Start: stdin, stdout and stderr are a new terminal of this size (Live.Terminal), which
	// becomes the command's controlling terminal; an empty Argv is the user's login shell
	// (LoginShells).
	TTY         *pty.Size
	Timeout     time.Duration
	OutputLimit int // bytes kept per stream
	User        users.User
}

// Result is how it went.
type Result struct {
	ExitCode    *int // nil when it timed out
	Stdout      []byte
	Stderr      []byte
	StdoutBytes int64 // all it wrote, kept or not
	StderrBytes int64
	TimedOut    bool
	OOMKilled   bool
}

// Truncated answers whether output was left out.
func (r Result) Truncated() bool {
	return r.StdoutBytes > int64(len(r.Stdout)) || r.StderrBytes > int64(len(r.Stderr))
}

// StartError says the command could not start: nothing ran.
type StartError struct{ Err error }

func (e *StartError) Error() string { return "could not start the command: " + e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// Runner runs commands and remembers the running ones by exec id: an id runs once at a time,
// and a sweep spares the sessions of the others.
type Runner struct {
	env []string // BaseEnv

	mu   sync.Mutex
	live map[string]*running // exec id -> command
}

type running struct {
	session int // the command's pid: it is its session's leader (0 until it has started)
}

// NewRunner answers a Runner whose commands start from env (see BaseEnv).
func NewRunner(env []string) *Runner {
	return &Runner{env: env, live: map[string]*running{}}
}

func (r *Runner) register(id string, c *running) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.live[id] = c
}

func (r *Runner) unregister(id string, c *running) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.live[id] == c {
		delete(r.live, id)
	}
}

// lookup answers a copy of what is registered under id (Start fills in a session after it
// registered the id), nil when nothing is.
func (r *Runner) lookup(id string) *running {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.live[id]; c != nil {
		copied := *c
		return &copied
	}
	return nil
}

// prepared is what starting a command needs, checked before anything runs.
type prepared struct {
	argv   []string
	path   string
	env    []string
	cred   *syscall.Credential
	before string // the cgroup's OOM-kill count before the start
}

// prepare checks a request and resolves its program; a *StartError when it cannot start.
func (r *Runner) prepare(req Request) (prepared, error) {
	if len(req.Argv) == 0 && req.TTY == nil {
		return prepared{}, &StartError{errors.New("no argv")}
	}
	env := commandEnv(r.env, req.User, req.Env, req.ExecID, req.TTY != nil)
	cred, err := credential(req.User)
	if err != nil {
		return prepared{}, &StartError{err}
	}
	var path string
	var before string
	threads.Blocking(func() {
		if req.Workdir != "" {
			if info, statErr := os.Stat(req.Workdir); statErr != nil {
				err = statErr
				return
			} else if !info.IsDir() {
				err = fmt.Errorf("workdir %s: not a directory", req.Workdir)
				return
			}
		}
		if len(req.Argv) == 0 {
			req.Argv, path, err = loginShell(env, req.Workdir)
		} else {
			path, err = executable(req.Argv[0], env, req.Workdir)
		}
		before = oomCount()
	})
	if err != nil {
		return prepared{}, &StartError{err}
	}
	return prepared{argv: req.Argv, path: path, env: env, cred: cred, before: before}, nil
}

// LoginShells are a terminal's shells when its request names no argv: the first one found in
// the command's PATH, as a login shell.
var LoginShells = [][]string{{"bash", "-l"}, {"sh", "-l"}}

func loginShell(env []string, workdir string) ([]string, string, error) {
	for _, argv := range LoginShells {
		if path, err := executable(argv[0], env, workdir); err == nil {
			return argv, path, nil
		}
	}
	return nil, "", errors.New("no login shell (bash or sh) in PATH")
}

// Run runs one command to completion; a *StartError when it could not start.
func (r *Runner) Run(req Request) (Result, error) {
	req.TTY = nil // Start's only
	deadline := time.Now().Add(req.Timeout)
	ready, err := r.prepare(req)
	if err != nil {
		return Result{}, err
	}
	before := ready.before
	p, err := r.start(req, ready.path, ready.env, ready.cred)
	if err != nil {
		return Result{}, &StartError{err}
	}
	defer p.close()
	live := &running{session: p.pid}
	r.register(req.ExecID, live)
	defer r.unregister(req.ExecID, live)

	p.feed(req.Stdin, deadline)
	var out, errs stream
	var wg sync.WaitGroup
	wg.Add(2)
	go out.drain(p.stdout, req.OutputLimit, deadline, &wg)
	go errs.drain(p.stderr, req.OutputLimit, deadline, &wg)
	wg.Wait()

	timedOut := out.timedOut || errs.timedOut
	var status syscall.WaitStatus
	exited := false
	if !timedOut {
		if status, exited = wait(p.exited, time.Until(deadline)); !exited {
			timedOut = true // it closed its output but runs on
		}
	}
	if timedOut {
		r.end(req.ExecID, p.pid, p.pipes, req.User.UID)
		wait(p.exited, proc.KillWait)
	}

	result := Result{
		Stdout: out.kept, Stderr: errs.kept, StdoutBytes: out.total, StderrBytes: errs.total, TimedOut: timedOut,
	}
	if !timedOut {
		code := statusCode(status)
		result.ExitCode = &code
		result.OOMKilled = oomKilled(code, before)
	}
	return result, nil
}

// statusCode is the command's exit code, or 128 + the signal that ended it.
func statusCode(status syscall.WaitStatus) int {
	if status.Signaled() {
		return 128 + int(status.Signal())
	}
	return status.ExitStatus()
}

// oomKilled answers whether an exit was an OOM kill: a 137 during which the cgroup's OOM-kill
// count (read before the start) grew.
func oomKilled(code int, before string) bool {
	if code != 137 {
		return false
	}
	var after string
	threads.Blocking(func() { after = oomCount() })
	return after != "" && after != before
}

func credential(u users.User) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		// Not root (tests): commands run as sandboxd itself, or not at all.
		if u.UID == os.Geteuid() {
			return nil, nil
		}
		return nil, fmt.Errorf("sandboxd runs as uid %d and cannot run commands as %s", os.Geteuid(), u)
	}
	groups := make([]uint32, len(u.Groups))
	for i, g := range u.Groups {
		groups[i] = uint32(g)
	}
	return &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: groups}, nil
}

// wait answers the exit status if it arrives within d.
func wait(exited <-chan syscall.WaitStatus, d time.Duration) (syscall.WaitStatus, bool) {
	if d <= 0 {
		select {
		case status := <-exited:
			return status, true
		default:
			return 0, false
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case status := <-exited:
		return status, true
	case <-timer.C:
		return 0, false
	}
}

// oomCount reads the cgroup's OOM-kill count ("" when there is none to read).
func oomCount() string {
	for _, path := range oomFiles {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "oom_kill ") {
				return strings.TrimSpace(line)
			}
		}
	}
	return ""
}

// end ends every process of a command: its session, marker, pipe holders and their
// descendants, and (sweep) the unmarked processes of its user that no other running command's
// session holds. session 0: none (the command has finished).
func (r *Runner) end(id string, session int, pipes map[proc.FileID]bool, uid int) int {
	protected := map[int]bool{}
	r.mu.Lock()
	for other, c := range r.live {
		if other != id && c.session != 0 {
			protected[c.session] = true
		}
	}
	r.mu.Unlock()
	return proc.End(proc.Query{
		ExecID: id, Sessions: sessionsOf(session), Pipes: pipes, Sweep: true, SweepUID: uid, Protected: protected,
	})
}

// sessionsOf answers a command's sessions for a proc.Query: its own, none once it has finished
// (0).
func sessionsOf(session int) []int {
	if session == 0 {
		return nil
	}
	return []int{session}
}
