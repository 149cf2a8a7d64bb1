package processes

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// readAll reads the ring from `from` to its end in reads of at most `chunk` bytes; each read is
// of one stream.
func readAll(r *Ring, from int64, chunk int) (data, streams []byte) {
	buf := make([]byte, chunk)
	for from < r.End() {
		stream, n := r.Read(from, buf)
		if n == 0 {
			panic("a read of kept output gave nothing")
		}
		data = append(data, buf[:n]...)
		streams = append(streams, bytes.Repeat([]byte{stream}, n)...)
		from += int64(n)
	}
	return data, streams
}

// TestTheRingKeepsTheLastBytesOfEachStreamInOrder checks the ring against a model (every byte
// written, with its stream) over random writes that wrap it many times, some larger than it.
func TestTheRingKeepsTheLastBytesOfEachStreamInOrder(t *testing.T) {
	const size = 1000
	rng := rand.New(rand.NewPCG(1, 2))
	r := NewRing(size)
	var model, modelStreams []byte
	var stdout, stderr int64
	for i := range 2000 {
		stream := byte('o')
		if rng.IntN(3) == 0 {
			stream = 'e'
		}
		n := 1 + rng.IntN(120)
		if i%97 == 0 {
			n = size + rng.IntN(500) // more than the ring holds at once
		}
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(rng.IntN(256))
		}
		r.Write(stream, p)
		model = append(model, p...)
		modelStreams = append(modelStreams, bytes.Repeat([]byte{stream}, n)...)
		if stream == 'e' {
			stderr += int64(n)
		} else {
			stdout += int64(n)
		}

		total := int64(len(model))
		if r.End() != total || r.Start() != max(0, total-size) {
			t.Fatalf("write %d: keeps [%d, %d), want [%d, %d)", i, r.Start(), r.End(), max(0, total-size), total)
		}
		if o, e := r.Counts(); o != stdout || e != stderr {
			t.Fatalf("write %d: counts %d %d, want %d %d", i, o, e, stdout, stderr)
		}
		from := r.Start() + int64(rng.IntN(int(total-r.Start())))
		data, streams := readAll(r, from, 1+rng.IntN(300))
		if !bytes.Equal(data, model[from:]) || !bytes.Equal(streams, modelStreams[from:]) {
			t.Fatalf("write %d: reading from %d does not give the model's bytes and streams", i, from)
		}
		if len(r.buf) > size {
			t.Fatalf("the buffer grew to %d bytes", len(r.buf))
		}
	}
}

func TestTheRingGrowsWithItsOutputAndShrinks(t *testing.T) {
	r := NewRing(1 << 20)
	if len(r.buf) != 0 {
		t.Fatalf("an empty ring holds %d bytes", len(r.buf))
	}
	r.Write('o', []byte("hello"))
	if len(r.buf) != minAlloc {
		t.Fatalf("after 5 bytes the buffer is %d bytes", len(r.buf))
	}
	r.Write('e', make([]byte, 100000))
	if len(r.buf) < 100005 || len(r.buf) > 2*100005+minAlloc {
		t.Fatalf("after 100005 bytes the buffer is %d bytes", len(r.buf))
	}
	r.Shrink()
	if len(r.buf) != 100005 || len(r.entries) != 2 {
		t.Fatalf("shrunk: %d bytes, %d entries", len(r.buf), len(r.entries))
	}
	if data, streams := readAll(r, 0, 64<<10); string(data[:5]) != "hello" || streams[4] != 'o' || streams[5] != 'e' || len(data) != 100005 {
		t.Fatalf("after Shrink: %q...", data[:10])
	}
	r.Write('o', []byte("more")) // it grows again
	if data, _ := readAll(r, 100005, 10); string(data) != "more" {
		t.Fatalf("after a write past Shrink: %q", data)
	}
}

func TestReadsStopAtTheEndOfARun(t *testing.T) {
	r := NewRing(100)
	r.Write('o', []byte("aaa"))
	r.Write('o', []byte("bbb")) // the same stream: one run
	r.Write('e', []byte("ccc"))
	buf := make([]byte, 100)
	if stream, n := r.Read(1, buf); stream != 'o' || string(buf[:n]) != "aabbb" {
		t.Fatalf("read from 1: %q %q", stream, buf[:n])
	}
	if stream, n := r.Read(6, buf); stream != 'e' || string(buf[:n]) != "ccc" {
		t.Fatalf("read from 6: %q %q", stream, buf[:n])
	}
	if _, n := r.Read(9, buf); n != 0 {
		t.Fatalf("a read at the end gave %d bytes", n)
	}
}

func TestAlternatingTinyWritesAreBoundedInEntries(t *testing.T) {
	const size = 64 << 10
	r := NewRing(size)
	for i := range 200000 {
		r.Write("oe"[i%2], []byte{byte(i)})
	}
	if live := len(r.entries) - r.head; live > r.maxEntries || live != int(r.End()-r.Start()) {
		t.Fatalf("%d entries for %d bytes kept (at most %d entries)", live, r.End()-r.Start(), r.maxEntries)
	}
	if cap(r.entries) > 4*r.maxEntries {
		t.Fatalf("the entries' array grew to %d", cap(r.entries))
	}
	// What is kept is still right: the last bytes, alternating.
	data, streams := readAll(r, r.Start(), 1000)
	for i := range data {
		off := int(r.Start()) + i
		if data[i] != byte(off) || streams[i] != "oe"[off%2] {
			t.Fatalf("byte at %d: %d %q", off, data[i], streams[i])
		}
	}
}
