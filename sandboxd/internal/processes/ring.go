package processes

import "sort"

// Ring keeps the last bytes of a process's output, up to a size: both streams in the order
// sandboxd read them, each byte at its absolute offset (the number of output bytes before it,
// both streams counted). Entries say which stream each run of bytes came from. Its memory grows
// with what is kept (from 4 KiB, doubling), never past its size.
//
// One entry per run of one stream: a process that alternates tiny writes between stdout and
// stderr makes many. At most one entry per 64 bytes of size are kept (at least 64); past that
// the oldest run goes, as if the bytes had run out.
type Ring struct {
	size       int
	maxEntries int
	buf        []byte // offset o is at buf[o % len(buf)]
	start, end int64  // the offsets kept: [start, end)
	entries    []entry
	head       int // entries[head:] are the live ones, oldest first
	stdout     int64
	stderr     int64
}

type entry struct {
	off    int64
	n      int64
	stream byte
}

const minAlloc = 4 << 10

// NewRing answers an empty Ring that keeps up to size bytes (at least 1).
func NewRing(size int) *Ring {
	size = max(size, 1)
	return &Ring{size: size, maxEntries: max(64, size/64)}
}

// Start answers the offset of the oldest byte kept, End the offset after the newest one.
func (r *Ring) Start() int64 { return r.start }
func (r *Ring) End() int64   { return r.end }

// Counts answers all the bytes written to each stream, kept or not.
func (r *Ring) Counts() (stdout, stderr int64) { return r.stdout, r.stderr }

// Write appends output of one stream ('o' or 'e'), dropping the oldest bytes past the size.
func (r *Ring) Write(stream byte, p []byte) {
	if len(p) == 0 {
		return
	}
	if stream == 'e' {
		r.stderr += int64(len(p))
	} else {
		r.stdout += int64(len(p))
	}
	if len(p) >= r.size { // only its last bytes can be kept
		skip := len(p) - r.size
		r.end += int64(skip)
		r.dropTo(r.end)
		p = p[skip:]
	}
	need := int(r.end-r.start) + len(p)
	if need > len(r.buf) && len(r.buf) < r.size {
		r.resize(min(r.size, max(need, 2*len(r.buf), minAlloc)))
	}
	if need > len(r.buf) {
		r.dropTo(r.start + int64(need-len(r.buf)))
	}
	pos := int(r.end % int64(len(r.buf)))
	n := copy(r.buf[pos:], p)
	copy(r.buf, p[n:])
	if last := len(r.entries) - 1; last >= r.head && r.entries[last].stream == stream && r.entries[last].off+r.entries[last].n == r.end {
		r.entries[last].n += int64(len(p))
	} else {
		r.entries = append(r.entries, entry{off: r.end, n: int64(len(p)), stream: stream})
	}
	r.end += int64(len(p))
	if len(r.entries)-r.head > r.maxEntries {
		r.dropTo(r.entries[r.head+1].off)
	}
}

// dropTo forgets the bytes before off.
func (r *Ring) dropTo(off int64) {
	if off <= r.start {
		return
	}
	r.start = min(off, r.end)
	for r.head < len(r.entries) && r.entries[r.head].off+r.entries[r.head].n <= r.start {
		r.entries[r.head] = entry{}
		r.head++
	}
	if r.head == len(r.entries) {
		r.entries, r.head = r.entries[:0], 0
		return
	}
	if first := &r.entries[r.head]; first.off < r.start {
		first.n -= r.start - first.off
		first.off = r.start
	}
	if r.head >= 64 && r.head > len(r.entries)/2 {
		live := copy(r.entries, r.entries[r.head:])
		clear(r.entries[live:])
		r.entries, r.head = r.entries[:live], 0
	}
}

// resize moves what is kept into a buffer of size bytes (at least what is kept).
func (r *Ring) resize(size int) {
	kept := make([]byte, r.end-r.start)
	r.copyAt(r.start, kept)
	r.buf = nil
	if size > 0 {
		r.buf = make([]byte, size)
		pos := int(r.start % int64(size))
		n := copy(r.buf[pos:], kept)
		copy(r.buf, kept[n:])
	}
}

// Shrink gives back the memory beyond what is kept (for a process that has ended).
func (r *Ring) Shrink() {
	if kept := int(r.end - r.start); kept < len(r.buf) {
		r.resize(kept)
	}
	if r.head > 0 || cap(r.entries) > len(r.entries) {
		r.entries = append([]entry(nil), r.entries[r.head:]...)
		r.head = 0
	}
}

// copyAt copies the kept bytes from offset off (start <= off <= end) into dst.
func (r *Ring) copyAt(off int64, dst []byte) int {
	total := 0
	for total < len(dst) && off < r.end {
		pos := int(off % int64(len(r.buf)))
		n := copy(dst[total:min(len(dst), total+int(r.end-off))], r.buf[pos:])
		total += n
		off += int64(n)
	}
	return total
}

// Read copies kept output from offset from (start <= from < end) into dst: bytes of one
// stream, at most to the end of its run. It answers the stream and the bytes copied (0 when
// from is not kept).
func (r *Ring) Read(from int64, dst []byte) (byte, int) {
	if from < r.start || from >= r.end || len(dst) == 0 {
		return 0, 0
	}
	live := r.entries[r.head:]
	i := sort.Search(len(live), func(i int) bool { return live[i].off+live[i].n > from })
	if i == len(live) {
		return 0, 0
	}
	e := live[i]
	n := r.copyAt(from, dst[:min(int64(len(dst)), e.off+e.n-from)])
	return e.stream, n
}
