package input

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestWritesAndActionsGoInOrderAndStayBounded(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	q := New(w, true)
	done := make(chan struct{})
	defer close(done)
	go q.Run(done)
	q.Push([]byte("a"), done)
	q.Do(func() { w.Write([]byte("|")) }, done) // runs between the writes around it
	q.Push([]byte("b"), done)
	// Nobody reads the pipe (64 KiB): a push past Buffer bytes waits.
	pushed := make(chan struct{})
	go func() {
		for range 3 {
			q.Push([]byte(strings.Repeat("x", Buffer/2)), done)
		}
		close(pushed)
	}()
	select {
	case <-pushed:
		t.Fatal("pushes past the buffer did not wait")
	case <-time.After(300 * time.Millisecond):
	}
	read := make(chan []byte)
	go func() {
		data, _ := io.ReadAll(r)
		read <- data
	}()
	<-pushed  // the command reads: the pushes go on
	q.Close() // closes the pipe once all is written
	data := <-read
	if !strings.HasPrefix(string(data), "a|b") || len(data) != 3+3*Buffer/2 {
		t.Fatalf("read %d bytes (%q...)", len(data), data[:min(len(data), 5)])
	}
}
