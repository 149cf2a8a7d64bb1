package pty

import (
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestOpenSizeAndEcho(t *testing.T) {
	master, pts, err := Open(Size{Cols: 100, Rows: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	if !strings.HasPrefix(pts.Name(), "/dev/pts/") {
		t.Fatalf("pts %q", pts.Name())
	}
	for _, f := range []*os.File{master, pts} {
		if got, err := GetSize(f); err != nil || got != (Size{100, 30}) {
			t.Fatalf("size %+v %v", got, err)
		}
	}
	if err := SetSize(master, Size{Cols: 7, Rows: 1000}); err != nil {
		t.Fatal(err)
	}
	if got, _ := GetSize(pts); got != (Size{7, 1000}) {
		t.Fatalf("after SetSize: %+v", got)
	}
	for _, bad := range []Size{{0, 10}, {10, 0}, {1001, 10}, {10, -1}} {
		if SetSize(master, bad) == nil {
			t.Errorf("size %+v accepted", bad)
		}
	}
	// What the pts side writes comes out of the master (the line discipline adds \r).
	pts.Write([]byte("hello\n"))
	buf := make([]byte, 64)
	n, err := master.Read(buf)
	if err != nil || string(buf[:n]) != "hello\r\n" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
	// The master is in the poller: a deadline interrupts a read.
	master.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := master.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a read past its deadline: %v", err)
	}
	master.SetReadDeadline(time.Time{})
	// Once the pts is closed, reading the master ends with EIO.
	pts.Close()
	_, err = master.Read(buf)
	if !errors.Is(err, syscall.EIO) && err != io.EOF {
		t.Fatalf("after the pts closed: %v", err)
	}
	if _, _, err := Open(Size{0, 0}); err == nil {
		t.Fatal("a 0x0 terminal opened")
	}
}
