// Package input feeds what a client sends a command (a /stream's stdin, a terminal's keystrokes
// and resizes) to the command, in order, without holding up the client's frame reader for
// longer than the command takes to read, and within a bound.
//
// Up to Buffer bytes wait for the command to read them; a push that finds them full waits (and
// so no frame behind it is read) until the command reads, the input breaks, or the command
// finishes: the frames before it were taken, the ones after it wait in the connection.
package input

import (
	"os"
	"sync"
)

// Buffer is how many bytes may wait for the command to read them (one more push may be in, so
// at most Buffer + one frame).
const Buffer = 1 << 20

// actionCost is what an action (a resize) counts against Buffer: pushes of actions alone are
// bounded too.
const actionCost = 64

type item struct {
	data []byte
	do   func()
}

// Queue writes what is pushed to f, one writer goroutine (Run) in order.
type Queue struct {
	f     *os.File
	owned bool          // close f when done with it (a pipe); a terminal's master is closed by its owner
	wake  chan struct{} // something was pushed, or close was asked
	room  chan struct{} // the writer has written something

	mu      sync.Mutex
	pending []item
	size    int  // bytes pending, the one being written included
	closing bool // close after what is pending
	broken  bool // a write failed (the command closed its input): what comes is dropped
}

// New answers a Queue that writes to f; owned: the Queue closes f once closing was asked or a
// write failed.
func New(f *os.File, owned bool) *Queue {
	return &Queue{f: f, owned: owned, wake: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Push queues data, first waiting while Buffer bytes or more are pending (see the package).
func (q *Queue) Push(data []byte, done <-chan struct{}) {
	if len(data) > 0 {
		q.push(item{data: data}, len(data), done)
	}
}

// Do queues an action, run by the writer in order with the writes (a terminal's resize).
func (q *Queue) Do(action func(), done <-chan struct{}) {
	q.push(item{do: action}, actionCost, done)
}

func (q *Queue) push(it item, cost int, done <-chan struct{}) {
	for {
		q.mu.Lock()
		full := q.size >= Buffer && !q.broken && !q.closing
		q.mu.Unlock()
		if !full {
			break
		}
		select {
		case <-q.room:
		case <-done:
			return
		}
	}
	q.mu.Lock()
	if q.closing || q.broken {
		q.mu.Unlock()
		return
	}
	q.pending = append(q.pending, it)
	q.size += cost
	q.mu.Unlock()
	poke(q.wake)
}

// Close asks the writer to close f once what is pending is written.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closing = true
	q.mu.Unlock()
	poke(q.wake)
}

// Run writes what is pushed (the poller parks it while f is full) until close is asked, a write
// fails, or done is closed (the command finished: its owner closes f, which ends a pending
// write).
func (q *Queue) Run(done <-chan struct{}) {
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			closing := q.closing
			q.mu.Unlock()
			if closing {
				q.release()
				return
			}
			select {
			case <-q.wake:
				continue
			case <-done:
				return
			}
		}
		it := q.pending[0]
		q.pending[0] = item{}
		q.pending = q.pending[1:]
		q.mu.Unlock()
		var err error
		cost := actionCost
		if it.do != nil {
			it.do()
		} else {
			_, err = q.f.Write(it.data)
			cost = len(it.data)
		}
		q.mu.Lock()
		q.size -= cost
		if err != nil {
			q.broken, q.pending, q.size = true, nil, 0
		}
		q.mu.Unlock()
		poke(q.room)
		if err != nil {
			q.release()
			return
		}
	}
}

func (q *Queue) release() {
	if q.owned {
		q.f.Close()
	}
}
