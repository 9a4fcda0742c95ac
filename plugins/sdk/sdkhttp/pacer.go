package sdkhttp

import (
	"context"
	"sync"
	"time"
)

// Pacer spaces the requests of every worker of one plugin configuration:
// at most a configured rate, and after a 429 everyone waits the pause out
// (not only the request that got it) and sends slower from then on. A
// server that throttles says so with few 429s, not one per worker.
type Pacer struct {
	mu        sync.Mutex
	fixed     time.Duration // from the configured rate (0: none)
	learned   time.Duration // slowed down after 429s (0: not throttled yet)
	next      time.Time     // the next request's slot
	pause     time.Time     // nobody sends before this
	accepted  []time.Time   // the answers of the last second that were not 429
	pauseEnd  time.Time     // when the last pause ended
	lastSlow  time.Time
	lastFast  time.Time
	throttled int
}

// NewPacer paces at most perSecond requests a second (0 or less: no
// limit until the server throttles). Fractions are kept: 0.5 is one
// request every two seconds.
func NewPacer(perSecond float64) *Pacer {
	p := &Pacer{}
	if perSecond > 0 {
		p.fixed = time.Duration(float64(time.Second) / perSecond)
	}
	return p
}

func (p *Pacer) interval() time.Duration { return max(p.fixed, p.learned) }

// Wait blocks until this request may go out.
func (p *Pacer) Wait(ctx context.Context) error {
	for {
		p.mu.Lock()
		now := time.Now()
		at := now
		if p.pause.After(at) {
			at = p.pause
		}
		if iv := p.interval(); iv > 0 {
			if p.next.After(at) {
				at = p.next
			}
			p.next = at.Add(iv)
		}
		if !at.After(now) {
			p.speedUp(now)
			p.mu.Unlock()
			return nil
		}
		p.mu.Unlock()
		t := time.NewTimer(time.Until(at))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		// A pause may have begun meanwhile: look again, then go.
		p.mu.Lock()
		if now := time.Now(); !p.pause.After(now) {
			p.speedUp(now)
			p.mu.Unlock()
			return nil
		}
		p.mu.Unlock()
	}
}

// Accepted is an answer that was not a 429: the rate the server takes is
// measured from these.
func (p *Pacer) Accepted() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	cut := 0
	for cut < len(p.accepted) && now.Sub(p.accepted[cut]) > time.Second {
		cut++
	}
	p.accepted = append(p.accepted[cut:], now)
}

// speedUp comes back slowly towards no limit: 2% faster each second
// after ten quiet seconds since the last 429.
func (p *Pacer) speedUp(now time.Time) {
	if p.learned == 0 || now.Sub(p.lastSlow) < 10*time.Second || now.Sub(p.lastFast) < time.Second {
		return
	}
	p.lastFast = now
	p.learned -= p.learned / 50
	if p.learned < time.Millisecond {
		p.learned = 0
	}
}

// Throttled is a 429 (or 503) with its wait: every worker pauses that long,
// and from then on sends at most 90% of the rate the server took since the
// last pause (within the last second), once per pause (the answers to
// requests already under way say nothing new).
func (p *Pacer) Throttled(wait time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	p.throttled++
	if p.pause.After(now) {
		return
	}
	since := now.Add(-time.Second)
	if p.pauseEnd.After(since) {
		since = p.pauseEnd
	}
	p.pause = now.Add(wait)
	p.pauseEnd = p.pause
	p.lastSlow = now
	n := 0
	for _, t := range p.accepted {
		if t.After(since) {
			n++
		}
	}
	window := max(now.Sub(since), 200*time.Millisecond)
	rate := max(float64(n)/window.Seconds()*0.9, 0.5)
	if iv := time.Duration(float64(time.Second) / rate); iv > p.learned {
		p.learned = iv
	}
}

// Count is how many throttling answers were seen.
func (p *Pacer) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.throttled
}
