package fleet_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/fleet"
)

// protoCloud serves an emulator's handler over HTTP/1.1 and, if h2c, over
// HTTP/2 without TLS too, and records the protocol of every request by
// path.
type protoCloud struct {
	emu *emulator.Server
	srv *httptest.Server
	mu  sync.Mutex
	got map[string]map[int]int // path → HTTP major version → requests
}

func newProtoCloud(t *testing.T, h2c bool) *protoCloud {
	t.Helper()
	emu, err := emulator.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close(context.Background()) })
	c := &protoCloud{emu: emu, got: map[string]map[int]int{}}
	h := emu.Handler()
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		if c.got[r.URL.Path] == nil {
			c.got[r.URL.Path] = map[int]int{}
		}
		c.got[r.URL.Path][r.ProtoMajor]++
		c.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	if h2c {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		c.srv.Config.Protocols = &p
	}
	c.srv.Start()
	t.Cleanup(c.srv.Close)
	return c
}

// TestFleetLongPollsOnH2C: with H2C, against a cloud that speaks h2c, the
// phones' long-polls are HTTP/2 streams and every other call HTTP/1.1;
// against one that does not, or without H2C, everything is HTTP/1.1. The
// runs succeed either way.
func TestFleetLongPollsOnH2C(t *testing.T) {
	for _, tc := range []struct {
		name     string
		h2c, ask bool
		want     string
	}{
		{"h2c cloud", true, true, fleet.ProtocolSplit},
		{"HTTP/1.1 cloud", false, true, fleet.ProtocolHTTP1},
		{"h2c cloud, H2C not asked for", true, false, fleet.ProtocolHTTP1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newProtoCloud(t, tc.h2c)
			rep, err := fleet.Run(context.Background(), fleet.Config{Cloud: c.srv.URL, AccessKey: c.emu.AccessKey(),
				Phones: 3, Count: 6, Inflight: 2, Approve: 1, Biometric: true, H2C: tc.ask})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Failed() || rep.Outcomes["succeeded"] != 6 {
				t.Fatalf("%+v", rep)
			}
			if rep.Protocol != tc.want {
				t.Fatalf("protocol %q, want %q", rep.Protocol, tc.want)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			for path, by := range c.got {
				want := 1
				if tc.want == fleet.ProtocolSplit && path == deviceapi.PathInboxes {
					want = 2
				}
				for major, n := range by {
					// The probe asks the cloud once over h2c: an h2c
					// cloud answers GET /ping; one that speaks only
					// HTTP/1.1 reads the HTTP/2 preface as a request
					// PRI * HTTP/2.0 and the fleet falls back.
					probe := major == 2 && n == 1 && tc.ask && (path == "/ping" || path == "*")
					if major != want && !probe {
						t.Errorf("%s: %d requests over HTTP/%d, want HTTP/%d", path, n, major, want)
					}
				}
			}
			if c.got[deviceapi.PathInboxes][map[bool]int{true: 2, false: 1}[tc.want == fleet.ProtocolSplit]] < 3 {
				t.Fatalf("inbox reads: %v", c.got[deviceapi.PathInboxes])
			}
		})
	}
}

// roundTripFunc is an http.RoundTripper from a function.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestSplitTransportRoutesByPath: the multi-account inbox read goes to
// LongPolls, also under a cloud URL with a path prefix; everything else
// goes to Calls.
func TestSplitTransportRoutesByPath(t *testing.T) {
	var got []string
	to := func(name string) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			got = append(got, name+" "+r.URL.Path)
			return &http.Response{StatusCode: 204, Body: http.NoBody, Request: r}, nil
		})
	}
	st := fleet.SplitTransport{LongPolls: to("long-poll"), Calls: to("call")}
	for _, u := range []string{
		"http://h" + deviceapi.PathInboxes,
		"http://h/cloud" + deviceapi.PathInboxes,
		"http://h" + deviceapi.PathVersions,
	} {
		req, err := http.NewRequest(http.MethodPost, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"long-poll " + deviceapi.PathInboxes, "long-poll /cloud" + deviceapi.PathInboxes, "call " + deviceapi.PathVersions}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("routed %v, want %v", got, want)
	}
}
