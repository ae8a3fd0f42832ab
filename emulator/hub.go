package emulator

import "sync"

// hub wakes long-polls: Wait returns a channel that Signal(key) closes. A
// waiter re-reads the state after it wakes, so a missed signal costs nothing
// but a wake-up.
type hub struct {
	mu    sync.Mutex
	ch    map[string]chan struct{}
	multi map[string][]*anyWaiter // WaitAny waiters, by key
}

// anyWaiter is one WaitAny: c closes on the first of its keys' signals.
type anyWaiter struct {
	c      chan struct{}
	closed bool
}

func (w *anyWaiter) wake() {
	if !w.closed {
		w.closed = true
		close(w.c)
	}
}

func newHub() *hub { return &hub{ch: map[string]chan struct{}{}, multi: map[string][]*anyWaiter{}} }

// WaitAny returns a channel that the first Signal of any of keys closes,
// and a func that forgets the waiter (call it when done waiting).
func (h *hub) WaitAny(keys []string) (<-chan struct{}, func()) {
	w := &anyWaiter{c: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range keys {
		h.multi[k] = append(h.multi[k], w)
	}
	return w.c, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, k := range keys {
			ws := h.multi[k]
			for i, x := range ws {
				if x == w {
					ws = append(ws[:i], ws[i+1:]...)
					break
				}
			}
			if len(ws) == 0 {
				delete(h.multi, k)
			} else {
				h.multi[k] = ws
			}
		}
	}
}

func (h *hub) Wait(key string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.ch[key]
	if !ok {
		c = make(chan struct{})
		h.ch[key] = c
	}
	return c
}

func (h *hub) Signal(keys ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range keys {
		if c, ok := h.ch[k]; ok {
			close(c)
			delete(h.ch, k)
		}
		for _, w := range h.multi[k] {
			w.wake()
		}
	}
}

// SignalAll wakes every waiter.
func (h *hub) SignalAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, c := range h.ch {
		close(c)
		delete(h.ch, k)
	}
	for _, ws := range h.multi {
		for _, w := range ws {
			w.wake()
		}
	}
}
