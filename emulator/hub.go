package emulator

import "sync"

// hub wakes long-polls: Wait returns a channel that Signal(key) closes. A
// waiter re-reads the state after it wakes, so a missed signal costs nothing
// but a wake-up.
type hub struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

func newHub() *hub { return &hub{ch: map[string]chan struct{}{}} }

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
}
