package fleet

import (
	"testing"
	"time"

	"github.com/authphone/authphone/sdk/cloudapi"
)

// TestFirstPollsAreSpread: a phone's first long-poll holds from a second to
// the cloud's longest wait, so a fleet's phones, started together, do not
// all poll again in the same quarter minute; later ones hold the last
// three quarters of it.
func TestFirstPollsAreSpread(t *testing.T) {
	var early, late int
	for range 2000 {
		w := pollWait(true)
		if w < time.Second || w > cloudapi.MaxInboxesWait {
			t.Fatalf("first wait %v outside [1s, %v]", w, cloudapi.MaxInboxesWait)
		}
		switch {
		case w < cloudapi.MaxInboxesWait/4:
			early++
		case w >= cloudapi.MaxInboxesWait*3/4:
			late++
		}
		if n := pollWait(false); n < cloudapi.MaxInboxesWait*3/4 || n > cloudapi.MaxInboxesWait {
			t.Fatalf("later wait %v outside [%v, %v]", n, cloudapi.MaxInboxesWait*3/4, cloudapi.MaxInboxesWait)
		}
	}
	// Uniform: about a quarter in each; all in the last quarter would be
	// the old bunching.
	if early < 300 || late > 700 {
		t.Fatalf("first waits not spread: %d of 2000 in the first quarter, %d in the last", early, late)
	}
}
