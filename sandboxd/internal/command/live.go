package command

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"vibebox.dev/sandboxd/internal/proc"
)

// ConflictError says a command with the same exec id is running: nothing ran.
type ConflictError struct{ ExecID string }

func (e *ConflictError) Error() string { return "a command with exec id " + e.ExecID + " is running" }

// Live is a command whose output its caller reads as it comes (a stream, a background process,
// a terminal). The caller reads Stdout and Stderr until each ends (EOF, or an error once the
// deadline has passed), then calls Finish once. Meanwhile it may write Stdin (when the request
// was Interactive) and Signal the command. A terminal has Terminal (its master: output, input,
// window size) instead of the three; its caller reads it until its output ends (EIO, once no
// process holds the terminal) or a deadline it sets once the command has Exited.
type Live struct {
	ExecID   string
	Argv     []string // as it ran (a terminal's login shell filled in)
	Pid      int
	Started  time.Time
	Stdin    *os.File // nil: /dev/null
	Stdout   *os.File
	Stderr   *os.File
	Terminal *os.File

	r       *Runner
	reg     *running
	p       *process
	uid     int
	before  string // the cgroup's OOM-kill count at the start
	timer   *time.Timer
	expired chan struct{} // closed once the deadline has ended the command
	exited  chan struct{} // closed once the command's process has exited (status is set)
	status  syscall.WaitStatus

	mu       sync.Mutex
	timedOut bool
	finished bool
}

// Outcome is how a Live command ended.
type Outcome struct {
	ExitCode  *int // nil when it timed out
	TimedOut  bool
	OOMKilled bool
	Duration  time.Duration
	Signal    syscall.Signal // the signal that ended it; 0 when it exited (or timed out)
}

// Start starts a command as Run does (user, environment, session, marker, deadline from now),
// registers it under its exec id and answers at once; a *StartError when it could not start, a
// *ConflictError when a command with that exec id is running (nothing ran either way). At the
// deadline the command is ended with the kill contract (sweep and pipe holders included), its
// output is read for one more second, and its stdin stops taking writes.
func (r *Runner) Start(req Request) (*Live, error) {
	started := time.Now()
	reg := &running{}
	r.mu.Lock()
	if _, taken := r.live[req.ExecID]; taken {
		r.mu.Unlock()
		return nil, &ConflictError{req.ExecID}
	}
	r.live[req.ExecID] = reg // reserved: session 0 until the fork
	r.mu.Unlock()

	ready, err := r.prepare(req)
	if err != nil {
		r.unregister(req.ExecID, reg)
		return nil, err
	}
	req.Argv = ready.argv
	p, err := r.start(req, ready.path, ready.env, ready.cred)
	if err != nil {
		r.unregister(req.ExecID, reg)
		return nil, &StartError{err}
	}
	r.mu.Lock()
	reg.session = p.pid
	r.mu.Unlock()
	l := &Live{
		ExecID: req.ExecID, Argv: ready.argv, Pid: p.pid, Started: started, Stdin: p.stdin, Stdout: p.stdout,
		Stderr: p.stderr, Terminal: p.tty, r: r, reg: reg, p: p, uid: req.User.UID, before: ready.before,
		expired: make(chan struct{}), exited: make(chan struct{}),
	}
	go func() {
		l.status = <-p.exited
		close(l.exited)
	}()
	l.timer = time.AfterFunc(time.Until(started.Add(req.Timeout)), l.expire)
	return l, nil
}

// Expired is closed once the deadline has ended the command.
func (l *Live) Expired() <-chan struct{} { return l.expired }

// Exited is closed once the command's process (the one sandboxd started) has exited.
func (l *Live) Exited() <-chan struct{} { return l.exited }

func (l *Live) expire() {
	l.mu.Lock()
	if l.finished {
		l.mu.Unlock()
		return
	}
	l.timedOut = true
	l.mu.Unlock()
	l.r.end(l.ExecID, l.Pid, l.p.pipes, l.uid)
	// What the pipes still hold is read for a moment, then the reads give up (a holder of the
	// pipe the kill could not reach must not keep the caller waiting).
	grace := time.Now().Add(time.Second)
	for _, f := range []*os.File{l.Stdout, l.Stderr, l.Terminal} {
		if f != nil {
			f.SetReadDeadline(grace)
		}
	}
	if l.Stdin != nil {
		l.Stdin.SetWriteDeadline(time.Now())
	}
	close(l.expired)
}

// Signal signals the command: KILL ends all of it with the kill contract (its session, marker,
// the holders of its output pipes, their descendants and, with sweep, the unmarked processes of
// its user); other signals go to its members (session, marker, descendants). Once it has
// finished, only what still carries its marker is left to signal. It answers how many
// processes it signalled.
func (l *Live) Signal(name string, sweep bool) (int, error) {
	sig, ok := Signals[name]
	if !ok {
		return 0, fmt.Errorf("unknown signal %q", name)
	}
	l.mu.Lock()
	finished := l.finished
	l.mu.Unlock()
	session := 0
	var pipes map[proc.FileID]bool
	if !finished {
		session = l.Pid
		pipes = l.p.pipes
	}
	if sig == syscall.SIGKILL {
		if sweep {
			return l.r.end(l.ExecID, session, pipes, l.uid), nil
		}
		return proc.End(proc.Query{ExecID: l.ExecID, Sessions: sessionsOf(session), Pipes: pipes}), nil
	}
	members := proc.Members(proc.Query{ExecID: l.ExecID, Sessions: sessionsOf(session)})
	for pid := range members {
		syscall.Kill(pid, sig)
	}
	return len(members), nil
}

// Finish waits until the command has exited (its output has ended: the caller has read it) or
// its deadline has ended it, and answers how it went. It unregisters the command and closes
// sandboxd's ends of its pipes. Call it once.
func (l *Live) Finish() Outcome {
	exited := false
	select {
	case <-l.exited:
		exited = true
	case <-l.expired:
	}
	l.mu.Lock()
	timedOut := l.timedOut
	l.finished = true
	l.mu.Unlock()
	l.timer.Stop()
	if timedOut {
		<-l.expired // its kill is done
		if !exited {
			select {
			case <-l.exited:
			case <-time.After(proc.KillWait):
			}
		}
	}
	out := Outcome{TimedOut: timedOut, Duration: time.Since(l.Started)}
	if !timedOut {
		if l.status.Signaled() {
			out.Signal = l.status.Signal()
		}
		code := statusCode(l.status)
		out.ExitCode = &code
		out.OOMKilled = oomKilled(code, l.before)
	}
	l.r.unregister(l.ExecID, l.reg)
	l.p.close()
	return out
}

// Abort ends the command with the kill contract (sweep included) unless it has finished: the
// client it streams to went away.
func (l *Live) Abort() {
	l.mu.Lock()
	finished := l.finished
	l.mu.Unlock()
	if !finished {
		l.Signal("KILL", true)
	}
}

// Drop ends a command nobody will read: it kills it, reads its output to the end and finishes
// it. For a command whose client was gone before its stream could begin.
func (l *Live) Drop() Outcome {
	l.Abort()
	done := make(chan struct{})
	for _, f := range []*os.File{l.Stdout, l.Stderr} {
		go func() {
			buf := make([]byte, 4096)
			for {
				if _, err := f.Read(buf); err != nil {
					break
				}
			}
			done <- struct{}{}
		}()
	}
	<-done
	<-done
	return l.Finish()
}
