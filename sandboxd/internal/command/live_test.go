package command

import (
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"vibebox.dev/sandboxd/internal/proc"
	"vibebox.dev/sandboxd/internal/testsupport"
)

// drain reads a Live command's outputs to their end, as a stream or a process does.
func drain(l *Live) (string, string) {
	out, errs := make(chan string, 1), make(chan string, 1)
	go func() { data, _ := io.ReadAll(l.Stdout); out <- string(data) }()
	go func() { data, _ := io.ReadAll(l.Stderr); errs <- string(data) }()
	return <-out, <-errs
}

func TestStartRefusesAnExecIDThatIsRunning(t *testing.T) {
	r := newRunner()
	req := request("sleep", "30")
	l, err := r.Start(req)
	if err != nil {
		t.Fatal(err)
	}
	if live := r.lookup(req.ExecID); live == nil || live.session != l.Pid {
		t.Fatalf("registered %+v, want the session of %d", live, l.Pid)
	}
	var conflict *ConflictError
	if _, err := r.Start(req); !errors.As(err, &conflict) {
		t.Fatalf("a second start of the id: %v", err)
	}
	if count, err := l.Signal("KILL", false); err != nil || count != 1 {
		t.Fatalf("KILL: %d %v", count, err)
	}
	drain(l)
	if out := l.Finish(); out.ExitCode == nil || *out.ExitCode != 137 || out.TimedOut {
		t.Fatalf("after KILL: %+v", out)
	}
	if r.lookup(req.ExecID) != nil {
		t.Fatal("still registered after Finish")
	}
	// Free again; and a command that cannot start frees its id.
	bad := req
	bad.Argv = []string{"/no/such/program"}
	var notStarted *StartError
	if _, err := r.Start(bad); !errors.As(err, &notStarted) || r.lookup(req.ExecID) != nil {
		t.Fatalf("a start that failed: %v", err)
	}
	req.Argv = []string{"true"}
	l, err = r.Start(req)
	if err != nil {
		t.Fatal(err)
	}
	drain(l)
	if out := l.Finish(); out.ExitCode == nil || *out.ExitCode != 0 {
		t.Fatalf("true: %+v", out)
	}
}

func TestALiveCommandIsEndedAtItsDeadline(t *testing.T) {
	r := newRunner()
	req := sh("sleep 30 & echo started; sleep 30")
	req.Timeout = 300 * time.Millisecond
	req.Interactive = true
	begun := time.Now()
	l, err := r.Start(req)
	if err != nil {
		t.Fatal(err)
	}
	stdout, _ := drain(l)
	// The kill at the deadline closes the output a moment before Expired is closed (after the
	// kill returns): wait for it, briefly.
	select {
	case <-l.Expired():
	case <-time.After(5 * time.Second):
		t.Fatal("the output ended but the deadline did not end the command")
	}
	out := l.Finish()
	if !out.TimedOut || out.ExitCode != nil || stdout != "started\n" || time.Since(begun) > 8*time.Second {
		t.Fatalf("%+v, stdout %q after %s", out, stdout, time.Since(begun))
	}
	if _, err := l.Stdin.Write([]byte("x")); err == nil {
		t.Fatal("stdin still takes writes after the end")
	}
}

func TestASignalAfterTheEndReachesOnlyWhatKeepsTheMarker(t *testing.T) {
	r := newRunner()
	l, err := r.Start(sh("sleep 30 >/dev/null 2>&1 & echo $!"))
	if err != nil {
		t.Fatal(err)
	}
	stdout, _ := drain(l)
	if out := l.Finish(); out.ExitCode == nil || *out.ExitCode != 0 {
		t.Fatalf("%+v", out)
	}
	leftover, _ := strconv.Atoi(strings.TrimSpace(stdout))
	if !alive(leftover) {
		t.Fatalf("the background sleep %q is not running", stdout)
	}
	if count, err := l.Signal("TERM", false); err != nil || count != 1 {
		t.Fatalf("TERM after the end: %d %v", count, err)
	}
	testsupport.Eventually(t, "the leftover is ended", 3*time.Second, func() bool { return !alive(leftover) })
}

func TestDropEndsACommandNobodyReads(t *testing.T) {
	r := newRunner()
	req := sh("yes")
	l, err := r.Start(req)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan Outcome, 1)
	go func() { done <- l.Drop() }()
	select {
	case out := <-done:
		if out.ExitCode == nil || *out.ExitCode != 137 {
			t.Fatalf("%+v", out)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("Drop did not end the command")
	}
}

func TestKillEndsTheTreeAndTheEscapeesThatKeepTheMarker(t *testing.T) {
	r := newRunner()
	// A child in a session of its own (no longer in the command's session or process group,
	// and not holding its output) is found by the marker it inherited.
	l, err := r.Start(sh("setsid sleep 60 </dev/null >/dev/null 2>&1 & sleep 60 & sleep 60"))
	if err != nil {
		t.Fatal(err)
	}
	var escapee int
	// All four run before the kill: the shell forks the escapee first, its sleeps after.
	testsupport.Eventually(t, "the escapee and the sleeps run", 5*time.Second, func() bool {
		members := proc.Members(proc.Query{ExecID: l.ExecID})
		for pid := range members {
			if pid != l.Pid && !slices.Contains(testsupport.InSession(l.Pid), pid) {
				escapee = pid
			}
		}
		return escapee != 0 && len(members) >= 4
	})
	if _, err := l.Signal("BOGUS", false); err == nil {
		t.Fatal("an unknown signal was sent")
	}
	if count, err := l.Signal("KILL", false); err != nil || count < 4 {
		t.Fatalf("signalled %d (%v), want the shell, its sleeps and the escapee", count, err)
	}
	drain(l)
	if out := l.Finish(); out.ExitCode == nil || *out.ExitCode != 137 || out.TimedOut {
		t.Fatalf("after KILL: %+v", out)
	}
	testsupport.Eventually(t, "the escapee is ended", 3*time.Second, func() bool { return !alive(escapee) })
}

func TestOtherSignalsGoToTheCommand(t *testing.T) {
	r := newRunner()
	l, err := r.Start(request("sleep", "60"))
	if err != nil {
		t.Fatal(err)
	}
	if count, err := l.Signal("TERM", false); err != nil || count != 1 {
		t.Fatalf("TERM signalled %d: %v", count, err)
	}
	drain(l)
	if out := l.Finish(); out.Signal != syscall.SIGTERM || out.ExitCode == nil || *out.ExitCode != 128+15 {
		t.Fatalf("after TERM: %+v", out)
	}
}
