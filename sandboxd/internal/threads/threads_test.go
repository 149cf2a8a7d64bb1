package threads

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestReserveLeavesIdleThreadsBehind(t *testing.T) {
	const n = 24
	if before := Count(); before >= n {
		t.Fatalf("the test binary already has %d threads: the test would prove nothing", before)
	}
	Reserve(n)
	time.Sleep(50 * time.Millisecond) // long enough for a thread the runtime would drop to go
	if after := Count(); after < n {
		t.Fatalf("after Reserve(%d) the process has %d threads", n, after)
	}
}

func TestBlockingAdmitsAtMostItsSlots(t *testing.T) {
	old := slots
	defer func() { slots = old }()
	slots = make(chan struct{}, 3)
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			Blocking(func() {
				now := inside.Add(1)
				for {
					seen := most.Load()
					if now <= seen || most.CompareAndSwap(seen, now) {
						break
					}
				}
				time.Sleep(10 * time.Millisecond)
				inside.Add(-1)
			})
		}()
	}
	wg.Wait()
	if got := most.Load(); got != 3 {
		t.Fatalf("at most %d goroutines were inside at once, want 3", got)
	}
}
