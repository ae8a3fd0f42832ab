package emulator

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/dispatch"
	"github.com/authphone/authphone/sdk/qr"
)

// TestQRCodeRenderedWhenAsked: an enrol answers the QR image inline and
// its URL; with Prefer: return=minimal it answers the URL only and renders
// nothing until the URL is fetched; the URL serves the PNG of the payload
// while the operation is pending, and 404 once the token is redeemed.
func TestQRCodeRenderedWhenAsked(t *testing.T) {
	s, err := New(WithAccessKey("k"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	post := func(path string, hdr map[string]string, body any, out any) int {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", s.URL()+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer k")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_ = json.NewDecoder(resp.Body).Decode(out)
		return resp.StatusCode
	}
	get := func(url string) (int, string, []byte) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), b
	}
	payloadOf := func(png []byte) string {
		text, err := qr.Read(png)
		if err != nil {
			t.Fatal(err)
		}
		return text
	}

	var full cloudapi.User
	if code := post(cloudapi.PathEnroll, nil, cloudapi.EnrollRequest{Username: "inline"}, &full); code != 201 {
		t.Fatalf("enrol: %d", code)
	}
	q := full.Enrollment.QRCode
	inline, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(q.DataURI, "data:image/png;base64,"))
	if err != nil || q.Type != "image/png" || !strings.HasPrefix(q.URL, s.URL()+PathQR) {
		t.Fatalf("qrCode %+v: %v", q, err)
	}
	p, _ := dispatch.Decode([]byte(full.Enrollment.AppLinkURI))
	if payloadOf(inline) != p.Encode() {
		t.Fatal("the inline QR code does not hold the payload")
	}
	code, ct, png := get(q.URL)
	if code != 200 || ct != "image/png" || !bytes.Equal(png, inline) {
		t.Fatalf("GET %s: %d %s, same image %v", q.URL, code, ct, bytes.Equal(png, inline))
	}

	var min cloudapi.User
	if code := post(cloudapi.PathEnroll, map[string]string{"Prefer": "return=minimal"}, cloudapi.EnrollRequest{Username: "lazy"}, &min); code != 201 {
		t.Fatalf("enrol: %d", code)
	}
	q = min.Enrollment.QRCode
	if q == nil || q.DataURI != "" || q.URL == "" || min.Enrollment.AppLinkURI == "" {
		t.Fatalf("minimal qrCode %+v", q)
	}
	p, _ = dispatch.Decode([]byte(min.Enrollment.AppLinkURI))
	if _, ok := s.qrs.get(p.Encode()); ok {
		t.Fatal("the QR code of a minimal answer was rendered before anyone asked for it")
	}
	code, _, png = get(q.URL)
	if code != 200 || payloadOf(png) != p.Encode() {
		t.Fatalf("GET %s: %d", q.URL, code)
	}
	if _, ok := s.qrs.get(p.Encode()); !ok {
		t.Fatal("the rendered QR code was not kept for the next request")
	}

	// Scanned: the image is gone.
	var rr deviceapi.RedeemResponse
	if code := post(deviceapi.PathRedeem+string(dispatch.Registration), nil, deviceapi.RedeemRequest{Token: p.Token}, &rr); code != 200 {
		t.Fatalf("redeem: %d", code)
	}
	for _, u := range []string{q.URL, s.URL() + PathQR + "no-such-token.png", s.URL() + PathQR + p.Token + ".gif"} {
		if code, _, _ := get(u); code != 404 {
			t.Fatalf("GET %s: %d, want 404", u, code)
		}
	}
}
