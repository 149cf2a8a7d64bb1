package command

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"time"

	"vibebox.dev/sandboxd/internal/proc"
	"vibebox.dev/sandboxd/internal/pty"
	"vibebox.dev/sandboxd/internal/reaper"
	"vibebox.dev/sandboxd/internal/threads"
)

// process is a started command: its pid, exit status to come, and our ends of its pipes.
type process struct {
	pid    int
	exited <-chan syscall.WaitStatus
	stdin  *os.File // nil: /dev/null
	stdout *os.File
	stderr *os.File
	tty    *os.File             // a terminal's master (then stdin, stdout and stderr are nil)
	pipes  map[proc.FileID]bool // its stdout and stderr pipes (or its pts), as /proc shows them
}

// start forks the command in its own session, as its user, with pipes for its output (and its
// stdin when there is some), or a terminal (req.TTY). Our ends of the pipes, and a terminal's
// master, are in Go's poller: reading and writing them parks goroutines, never threads.
func (r *Runner) start(req Request, path string, env []string, cred *syscall.Credential) (*process, error) {
	if req.TTY != nil {
		return r.startTTY(req, path, env, cred)
	}
	p := &process{}
	var child [3]*os.File // stdin, stdout and stderr as the command gets them
	defer func() {        // the command has its copies once forked
		for _, f := range child {
			if f != nil {
				f.Close()
			}
		}
	}()
	fail := func(err error) (*process, error) {
		p.close()
		return nil, err
	}
	var err error
	if req.Stdin != nil || req.Interactive {
		if child[0], p.stdin, err = os.Pipe(); err != nil {
			return fail(err)
		}
	} else if child[0], err = os.Open(os.DevNull); err != nil {
		return fail(err)
	}
	if p.stdout, child[1], err = os.Pipe(); err != nil {
		return fail(err)
	}
	if p.stderr, child[2], err = os.Pipe(); err != nil {
		return fail(err)
	}
	// Fd() also puts the child's ends in blocking mode, as programs expect them.
	files := []uintptr{child[0].Fd(), child[1].Fd(), child[2].Fd()}
	p.pipes = map[proc.FileID]bool{}
	for _, fd := range files[1:] {
		if id, err := proc.Identify(fd); err == nil {
			p.pipes[id] = true
		}
	}
	attr := &syscall.ProcAttr{
		Dir:   req.Workdir,
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Setsid: true, Credential: cred},
	}
	threads.Blocking(func() { p.pid, p.exited, err = reaper.Spawn(path, req.Argv, attr) })
	if err != nil {
		return fail(err)
	}
	return p, nil
}

// feed writes stdin while the output is read, and closes it when all is written; a command that
// does not read it leaves the writer parked until the end (close) or the deadline.
func (p *process) feed(data []byte, deadline time.Time) {
	if p.stdin == nil {
		return
	}
	if len(data) == 0 {
		p.stdin.Close()
		return
	}
	stdin := p.stdin
	go func() {
		stdin.SetWriteDeadline(deadline)
		stdin.Write(data) // EPIPE when the command exits without reading all: fine
		stdin.Close()
	}()
}

// startTTY forks the command as start does, its stdin, stdout and stderr a new terminal that
// becomes its controlling terminal (setsid, then TIOCSCTTY on fd 0).
func (r *Runner) startTTY(req Request, path string, env []string, cred *syscall.Credential) (*process, error) {
	master, pts, err := pty.Open(*req.TTY)
	if err != nil {
		return nil, err
	}
	defer pts.Close() // the command has its copies once forked
	if cred != nil {
		// The user's terminal, as login and sshd make it (the group stays tty's): programs
		// that open it by name (tty, write, pinentry) may.
		pts.Chown(int(cred.Uid), -1)
		pts.Chmod(0o620)
	}
	fd := pts.Fd() // blocking mode, as programs expect their terminal
	p := &process{tty: master, pipes: map[proc.FileID]bool{}}
	if id, err := proc.Identify(fd); err == nil {
		p.pipes[id] = true // whoever holds the pts is the terminal's
	}
	attr := &syscall.ProcAttr{
		Dir:   req.Workdir,
		Env:   env,
		Files: []uintptr{fd, fd, fd},
		Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0, Credential: cred},
	}
	threads.Blocking(func() { p.pid, p.exited, err = reaper.Spawn(path, req.Argv, attr) })
	if err != nil {
		master.Close()
		return nil, err
	}
	return p, nil
}

func (p *process) close() {
	for _, f := range []*os.File{p.stdin, p.stdout, p.stderr, p.tty} {
		if f != nil {
			f.Close()
		}
	}
}

// stream is one output of a command: what is kept and how much there was.
type stream struct {
	kept     []byte
	total    int64
	timedOut bool
}

// drain reads until the stream closes (every holder of its write end has closed it) or the
// deadline passes.
func (s *stream) drain(f *os.File, limit int, deadline time.Time, wg *sync.WaitGroup) {
	defer wg.Done()
	if err := f.SetReadDeadline(deadline); err != nil {
		// Not in the poller (cannot happen with os.Pipe): the deadline closes it instead.
		timer := time.AfterFunc(time.Until(deadline), func() { f.Close() })
		defer timer.Stop()
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			s.total += int64(n)
			if room := limit - len(s.kept); room > 0 {
				s.kept = append(s.kept, buf[:min(n, room)]...)
			}
		}
		if err != nil {
			s.timedOut = errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, os.ErrClosed)
			return
		}
	}
}
