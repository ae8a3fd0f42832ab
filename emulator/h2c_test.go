package emulator_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
)

// h2cClient speaks only HTTP/2 without TLS (prior knowledge) and counts
// the connections it opens.
func h2cClient(dials *atomic.Int32) *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{Protocols: &p, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return d.DialContext(ctx, network, addr)
	}}}
}

// TestH2CAndHTTP1: a client that opens with the HTTP/2 preface is served
// HTTP/2; a plain client still gets HTTP/1.1.
func TestH2CAndHTTP1(t *testing.T) {
	c := newCloud(t, emulator.WithH2C())
	var dials atomic.Int32
	for _, tc := range []struct {
		name   string
		client *http.Client
		major  int
	}{{"h2c", h2cClient(&dials), 2}, {"plain", &http.Client{}, 1}} {
		resp, err := tc.client.Get(c.url + deviceapi.PathVersions)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != tc.major {
			t.Fatalf("%s: %d over %s, want 200 over HTTP/%d", tc.name, resp.StatusCode, resp.Proto, tc.major)
		}
	}
}

// TestH2COffByDefault: without WithH2C the server speaks HTTP/1.1 only;
// a client that opens with the HTTP/2 preface gets no HTTP/2 answer.
func TestH2COffByDefault(t *testing.T) {
	c := newCloud(t)
	var dials atomic.Int32
	resp, err := h2cClient(&dials).Get(c.url + deviceapi.PathVersions)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor == 2 {
			t.Fatalf("h2c answered (%s %s) without WithH2C", resp.Proto, resp.Status)
		}
	}
	plain, err := http.Get(c.url + deviceapi.PathVersions)
	if err != nil {
		t.Fatal(err)
	}
	plain.Body.Close()
	if plain.StatusCode != 200 || plain.ProtoMajor != 1 {
		t.Fatalf("plain client: %d over %s", plain.StatusCode, plain.Proto)
	}
}

// TestH2CStreamsPerConnection: the server announces MaxStreamsPerConn, and
// more long-polls than that at once all get their answer, on more than
// one connection but far fewer than one each.
func TestH2CStreamsPerConnection(t *testing.T) {
	c := newCloud(t, emulator.WithH2C())
	conn, err := net.Dial("tcp", strings.TrimPrefix(c.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, http2.ClientPreface)
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("first frame %v, want SETTINGS", f)
	}
	if v, ok := sf.Value(http2.SettingMaxConcurrentStreams); !ok || v != emulator.MaxStreamsPerConn {
		t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS %d (%v), want %d", v, ok, emulator.MaxStreamsPerConn)
	}

	_, st := c.enroll("streams")
	body := mustJSON(cloudapi.StatusRequest{StatusToken: st})
	var dials atomic.Int32
	client := h2cClient(&dials)
	n := emulator.MaxStreamsPerConn + 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		// One at a time until sent: requests that all start together
		// dial a connection each before any is up (net/http keeps one of
		// those and closes the others), which is not what is tested.
		sent := make(chan struct{})
		var once sync.Once
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { once.Do(func() { close(sent) }) }})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer once.Do(func() { close(sent) })
			req, _ := http.NewRequestWithContext(ctx, "POST", c.url+cloudapi.PathStatus+"?wait=2s", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
				errs <- errors.New(resp.Proto + " " + resp.Status)
			}
		}()
		<-sent
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if d := dials.Load(); d < 2 || d > 3 {
		t.Fatalf("%d long-polls at once took %d connections; want 2 (at most %d streams each), 3 at worst", n, d, emulator.MaxStreamsPerConn)
	}
}

// TestH2CSlowClientsAreCutOff: the HTTP/1.1 limits hold on HTTP/2 too. A
// client trickling the preface is cut off by the header timeout, one that
// sends a request and trickles its body has the stream reset by the body
// timeout, and a connection with no open stream is closed once idle.
func TestH2CSlowClientsAreCutOff(t *testing.T) {
	c := newCloud(t, emulator.WithH2C(), emulator.WithTimeouts(emulator.Timeouts{Header: 200 * time.Millisecond, Body: 300 * time.Millisecond, Idle: 300 * time.Millisecond}))
	addr := strings.TrimPrefix(c.url, "http://")
	const patience = 30 * time.Second
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	t.Run("preface", func(t *testing.T) {
		conn := dial()
		_, _ = io.WriteString(conn, "PRI * HTTP/2.0\r\n")
		if !closedWithin(t, conn, patience, "\r\nSM\r\n\r") {
			t.Fatal("a client trickling the HTTP/2 preface was never cut off")
		}
	})
	t.Run("body", func(t *testing.T) {
		conn := dial()
		_, _ = io.WriteString(conn, http2.ClientPreface)
		fr := http2.NewFramer(conn, conn)
		_ = fr.WriteSettings()
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", addr}, {":path", cloudapi.PathStatus},
			{"content-type", "application/json"}, {"content-length", "100000"}} {
			_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		defer close(stop)
		var wmu sync.Mutex
		go func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				wmu.Lock()
				err := fr.WriteData(1, false, []byte(" "))
				wmu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		_ = conn.SetReadDeadline(time.Now().Add(patience))
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("no RST_STREAM before %v", err)
			}
			switch f := f.(type) {
			case *http2.RSTStreamFrame:
				if f.StreamID == 1 {
					return // cut off
				}
			case *http2.HeadersFrame, *http2.DataFrame:
				// The handler's read of the body failed at the
				// deadline and it answered; without the deadline it
				// would still be reading. The stream ends next.
				if f.Header().StreamID == 1 && f.Header().Flags.Has(http2.FlagDataEndStream) {
					return
				}
			case *http2.GoAwayFrame:
				return
			case *http2.SettingsFrame:
				if !f.IsAck() {
					wmu.Lock()
					_ = fr.WriteSettingsAck()
					wmu.Unlock()
				}
			}
		}
	})
	t.Run("idle", func(t *testing.T) {
		conn := dial()
		_, _ = io.WriteString(conn, http2.ClientPreface)
		_ = http2.NewFramer(conn, conn).WriteSettings()
		if !closedWithin(t, conn, patience, "") {
			t.Fatal("an idle HTTP/2 connection was never closed")
		}
	})
}
