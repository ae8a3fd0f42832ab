package emulator

import "testing"

func TestHubWaitAny(t *testing.T) {
	h := newHub()
	c, forget := h.WaitAny([]string{"a", "b"})
	other, forgetOther := h.WaitAny([]string{"b"})
	h.Signal("a")
	select {
	case <-c:
	default:
		t.Fatal("a signal of one key did not wake WaitAny")
	}
	select {
	case <-other:
		t.Fatal("a waiter of another key was woken")
	default:
	}
	h.Signal("b", "a") // a waiter woken twice closes once
	<-other
	forget()
	forgetOther()
	if len(h.multi) != 0 {
		t.Fatalf("waiters left behind: %v", h.multi)
	}
	c, forget = h.WaitAny([]string{"x"})
	h.SignalAll()
	<-c
	forget()
	if len(h.multi) != 0 {
		t.Fatalf("waiters left behind: %v", h.multi)
	}
}
