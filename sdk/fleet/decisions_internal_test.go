package fleet

import "testing"

func TestDecisions(t *testing.T) {
	var d decisions
	if got := d.take("a"); got != "" {
		t.Fatalf("take of nothing = %q, want empty", got)
	}
	d.set("a", "approving")
	d.set("b", "denied")
	d.swap("a", "approving", "approved")
	d.swap("b", "approving", "approved") // not approving: stays denied
	if got := d.take("a"); got != "approved" {
		t.Fatalf("a = %q, want approved", got)
	}
	if got := d.take("a"); got != "" {
		t.Fatalf("a taken twice = %q, want empty", got)
	}
	// The backend read the end before the phone's flow finished: the late
	// swap must not bring the decision back.
	d.swap("a", "approving", "approved")
	if got := d.take("b"); got != "denied" {
		t.Fatalf("b = %q, want denied", got)
	}
	if d.m != nil {
		t.Fatalf("the map outlived its last entry: %v", d.m)
	}
}
