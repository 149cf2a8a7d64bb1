package frames

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// pair answers both ends of a real TCP connection.
func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func frame(kind byte, payload []byte) []byte {
	out := make([]byte, HeaderSize+len(payload))
	copy(out[HeaderSize:], payload)
	return Put(out, kind)
}

var caps = Caps{Stdin: 10, CloseStdin: 0, Signal: MaxSignal}

func TestFramesRoundTrip(t *testing.T) {
	client, server := pair(t)
	w := NewWriter(client)
	go func() {
		w.Write(Stdin, []byte("hello"))
		w.Write(CloseStdin, nil)
		w.WriteFramed(frame(Signal, []byte("TERM")))
	}()
	fr := NewReader(server, bufio.NewReader(server), caps, time.Second)
	for _, want := range []struct {
		kind    byte
		payload string
	}{{Stdin, "hello"}, {CloseStdin, ""}, {Signal, "TERM"}} {
		kind, payload, err := fr.Next()
		if err != nil || kind != want.kind || string(payload) != want.payload {
			t.Fatalf("%q %q %v, want %q %q", kind, payload, err, want.kind, want.payload)
		}
	}
	// The header is big-endian.
	if got := frame(Stdout, make([]byte, 0x0102)); !bytes.Equal(got[:5], []byte{'o', 0, 0, 1, 2}) {
		t.Fatalf("header %v", got[:5])
	}
}

func TestUnknownTypesAndOversizedFramesAreProtocolErrors(t *testing.T) {
	for _, bad := range [][]byte{
		frame('z', nil),                // not a type
		frame(Stdout, []byte("x")),     // sandboxd's own type
		frame(Stdin, make([]byte, 11)), // over its cap
		frame(CloseStdin, []byte("x")),
		frame(Resize, []byte(`{"cols":80,"rows":24}`)), // a terminal's type, on a stream that takes none
	} {
		client, server := pair(t)
		go client.Write(bad[:5]) // the header is enough to know
		fr := NewReader(server, bufio.NewReader(server), caps, time.Second)
		if _, _, err := fr.Next(); !errors.Is(err, ErrProtocol) {
			t.Errorf("%q: %v, want a protocol error", bad[:5], err)
		}
	}
	// Where it is taken, a resize frame is capped.
	client, server := pair(t)
	go client.Write(frame(Resize, make([]byte, MaxResize+1))[:5])
	fr := NewReader(server, bufio.NewReader(server), Caps{Resize: MaxResize}, time.Second)
	if _, _, err := fr.Next(); !errors.Is(err, ErrProtocol) {
		t.Errorf("an oversized resize frame: %v, want a protocol error", err)
	}
}

func TestAFrameBegunMustArriveWithinTheStallTime(t *testing.T) {
	client, server := pair(t)
	fr := NewReader(server, bufio.NewReader(server), caps, 300*time.Millisecond)
	// Idle between frames for longer than the stall time: fine.
	go func() {
		time.Sleep(600 * time.Millisecond)
		client.Write(frame(Signal, []byte("INT")))
		// Then half a frame, and nothing more.
		half := frame(Stdin, []byte("0123456789"))
		client.Write(half[:7])
	}()
	if kind, payload, err := fr.Next(); err != nil || kind != Signal || string(payload) != "INT" {
		t.Fatalf("after an idle wait: %q %q %v", kind, payload, err)
	}
	started := time.Now()
	_, _, err := fr.Next()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a stalled frame: %v", err)
	}
	if took := time.Since(started); took < 250*time.Millisecond || took > 3*time.Second {
		t.Fatalf("a stalled frame was given %s", took)
	}
}

func TestAConnectionEndingInsideAFrameEndedEarly(t *testing.T) {
	client, server := pair(t)
	head := make([]byte, 5)
	head[0] = Stdin
	binary.BigEndian.PutUint32(head[1:], 5)
	client.Write(append(head, "ab"...))
	client.Close()
	fr := NewReader(server, bufio.NewReader(server), caps, time.Second)
	if _, _, err := fr.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("%v, want an unexpected EOF", err)
	}
	// Between frames, an end is an EOF.
	client, server = pair(t)
	client.Close()
	fr = NewReader(server, bufio.NewReader(server), caps, time.Second)
	if _, _, err := fr.Next(); err != io.EOF {
		t.Fatalf("%v, want EOF", err)
	}
}

func TestLingerBoundsTheWaitForTheNextFrame(t *testing.T) {
	_, server := pair(t)
	fr := NewReader(server, bufio.NewReader(server), caps, time.Minute)
	done := make(chan error, 1)
	go func() {
		_, _, err := fr.Next()
		done <- err
	}()
	time.Sleep(100 * time.Millisecond) // Next waits with no deadline
	fr.Linger(time.Now().Add(200 * time.Millisecond))
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Linger did not bound the wait")
	}
}
