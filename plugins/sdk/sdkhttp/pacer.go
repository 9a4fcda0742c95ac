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
	sent      []time.Time   // the requests of the last second
	lastSlow  time.Time
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
			p.record(now)
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
		if !p.pause.After(time.Now()) {
			p.record(time.Now())
			p.speedUp()
			p.mu.Unlock()
			return nil
		}
		p.mu.Unlock()
	}
}

// record keeps the last second's sends (for the rate a 429 answered).
func (p *Pacer) record(now time.Time) {
	cut := 0
	for cut < len(p.sent) && now.Sub(p.sent[cut]) > time.Second {
		cut++
	}
	p.sent = append(p.sent[cut:], now)
}

// speedUp comes back slowly towards no limit: 1% faster per request
// after five quiet seconds since the last 429.
func (p *Pacer) speedUp() {
	if p.learned > 0 && time.Since(p.lastSlow) > 5*time.Second {
		p.learned -= p.learned / 100
		if p.learned < time.Millisecond {
			p.learned = 0
		}
	}
}

// Throttled is a 429 (or 503) with its wait: every worker pauses that long,
// and from then on sends at most 80% of the rate that was answered so,
// once per pause (the answers to requests already under way say nothing
// new).
func (p *Pacer) Throttled(wait time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	p.throttled++
	if until := now.Add(wait); until.After(p.pause) {
		p.pause = until
	}
	if now.Sub(p.lastSlow) < time.Second {
		return
	}
	p.lastSlow = now
	rate := float64(len(p.sent))
	if rate < 1 {
		rate = 1
	}
	if iv := time.Duration(float64(time.Second) / (rate * 0.8)); iv > p.learned {
		p.learned = iv
	}
}

// Count is how many throttling answers were seen.
func (p *Pacer) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.throttled
}
