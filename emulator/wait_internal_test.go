package emulator

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/authphone/authphone/sdk/cloudapi"
)

// TestWaitCaps: ?wait= is capped at the API's minute, and at five minutes
// for the multi-account inbox; a bad one is refused.
func TestWaitCaps(t *testing.T) {
	for _, tc := range []struct {
		q          string
		api, inbox time.Duration
	}{
		{"", 0, 0},
		{"?wait=30s", 30 * time.Second, 30 * time.Second},
		{"?wait=4m", cloudapi.MaxWait, 4 * time.Minute},
		{"?wait=1h", cloudapi.MaxWait, cloudapi.MaxInboxesWait},
	} {
		r := httptest.NewRequest("POST", "/x"+tc.q, nil)
		if got, err := parseWait(r); err != nil || got != tc.api {
			t.Errorf("parseWait(%q) = %v, %v; want %v", tc.q, got, err, tc.api)
		}
		if got, err := parseWaitUpTo(r, cloudapi.MaxInboxesWait); err != nil || got != tc.inbox {
			t.Errorf("parseWaitUpTo(%q) = %v, %v; want %v", tc.q, got, err, tc.inbox)
		}
	}
	for _, q := range []string{"?wait=soon", "?wait=-1s"} {
		if _, err := parseWaitUpTo(httptest.NewRequest("POST", "/x"+q, nil), cloudapi.MaxInboxesWait); err == nil {
			t.Errorf("%s accepted", q)
		}
	}
}
