package logpipe

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
	"vibebox.dev/sandboxd/internal/testsupport"
)

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestWritesToTheFIFOsReachTheLogAndOutliveTheirWriters(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "stdout"), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	if err := Start(dir, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"stdout", "stderr"} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode()&os.ModeNamedPipe == 0 || info.Mode().Perm() != 0o622 {
			t.Fatalf("%s: mode %v, want a FIFO with 0622", name, info.Mode())
		}
	}
	// Two writers one after the other: the first one's close is no end of file for sandboxd.
	for _, line := range []string{"first\n", "second\n"} {
		f, err := os.OpenFile(filepath.Join(dir, "stdout"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(line); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	f, err := os.OpenFile(filepath.Join(dir, "stderr"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("oops\n")
	f.Close()
	testsupport.Eventually(t, "both lines on stdout", 10*time.Second, func() bool { return stdout.String() == "first\nsecond\n" })
	testsupport.Eventually(t, "the line on stderr", 10*time.Second, func() bool { return stderr.String() == "oops\n" })
}
