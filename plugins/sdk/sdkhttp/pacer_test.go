package sdkhttp

import (
	"context"
	"sync"
	"testing"
	"time"
)

// A fractional rate is kept (0.5: one request every two seconds), and a
// rate spaces the requests of every worker together.
func TestPacerRate(t *testing.T) {
	if iv := NewPacer(0.5).interval(); iv != 2*time.Second {
		t.Fatalf("0.5 requests a second: every %v", iv)
	}
	p := NewPacer(20)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				p.Wait(context.Background())
			}
		}()
	}
	wg.Wait()
	// 20 requests at 20 a second: the last goes out after 19 intervals.
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("20 requests at 20/s took %v", d)
	}
}

// A 429 pauses every worker, not only the one that got it, and the ones
// after it go at most at 90% of the rate the server took.
func TestPacerThrottledPausesEveryone(t *testing.T) {
	p := NewPacer(0)
	for i := 0; i < 50; i++ {
		p.Wait(context.Background())
		p.Accepted()
	}
	p.Throttled(300 * time.Millisecond)
	start := time.Now()
	if err := p.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("another worker went after %v of a 300ms pause", d)
	}
	if p.learned == 0 {
		t.Fatal("no slower rate after a 429")
	}
	if p.Count() != 1 {
		t.Fatalf("count %d", p.Count())
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.Throttled(time.Hour)
	p.mu.Lock()
	p.pause = time.Now().Add(time.Hour)
	p.mu.Unlock()
	cancel()
	if err := p.Wait(ctx); err == nil {
		t.Fatal("a cancelled wait returned no error")
	}
}
