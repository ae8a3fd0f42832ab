package emulator_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/authphone/authphone/emulator"
	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/trustapi"
	"github.com/authphone/authphone/sdk/uaf"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// TestTransactionTokenSignedOnRead: a succeeded transaction keeps its
// token's signing input, signed when its status is first read; every
// read, on either of two servers sharing the store, gives the same token,
// signed by the key that was current when the operation succeeded (one
// rotated since included), and it verifies against the JWKS.
func TestTransactionTokenSignedOnRead(t *testing.T) {
	store := emulator.NewMemoryStore()
	start := func() *cloud {
		s, err := emulator.New(emulator.WithAccessKey("test-key"), emulator.WithStore(store))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		return &cloud{t: t, srv: s, url: s.URL()}
	}
	a := start()
	p, st := a.enroll("alice")
	var req uaf.RegistrationRequest
	a.redeem(p, &req)
	if code, sb := a.postUAF(deviceapi.PathRegistration, newDevice().regResponse(t, req)); code != 200 {
		t.Fatalf("register: %d %+v", code, sb)
	}
	var kept string
	if err := store.View(context.Background(), func(tx emulator.Tx) error {
		txs, err := tx.Transactions()
		if len(txs) == 1 {
			kept = txs[0].Token
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Count(kept, ".") != 1 {
		t.Fatalf("the transaction keeps %q, want its token's signing input (header.payload)", kept)
	}
	oldKid := jwtHeader(t, kept)["kid"]
	if _, err := a.srv.RotateSigningKey(); err != nil {
		t.Fatal(err)
	}
	b := start()
	var tokens []string
	for _, c := range []*cloud{b, a, b, a} {
		var sr cloudapi.StatusResponse
		if code := c.do("POST", cloudapi.PathStatus, nil, mustJSON(cloudapi.StatusRequest{StatusToken: st}), &sr); code != 200 || sr.Status != cloudapi.StatusSucceeded {
			t.Fatalf("status: %d %+v", code, sr)
		}
		tokens = append(tokens, sr.Token)
	}
	for _, tok := range tokens[1:] {
		if tok != tokens[0] {
			t.Fatalf("two reads gave two tokens:\n%s\n%s", tokens[0], tok)
		}
	}
	if !strings.HasPrefix(tokens[0], kept+".") || jwtHeader(t, tokens[0])["kid"] != oldKid {
		t.Fatalf("token %s is not the kept input %s signed", tokens[0], kept)
	}
	resp, err := http.Get(b.url + trustapi.PathJWKS)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	set, err := jwk.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jwt.ParseString(tokens[0], jwt.WithKeySet(set), jwt.WithValidate(true), jwt.WithAudience("backend")); err != nil {
		t.Fatalf("jwx refuses the token: %v", err)
	}
	// A token kept signed (by an older emulator) is answered as it is; an
	// input whose key this cloud does not know is signed by the current key.
	keep := func(tok string) string {
		t.Helper()
		if err := store.Update(context.Background(), func(tx emulator.Tx) error {
			txs, err := tx.Transactions()
			if err != nil {
				return err
			}
			txs[0].Token = tok
			return tx.PutTransaction(txs[0])
		}); err != nil {
			t.Fatal(err)
		}
		var sr cloudapi.StatusResponse
		b.do("POST", cloudapi.PathStatus, nil, mustJSON(cloudapi.StatusRequest{StatusToken: st}), &sr)
		return sr.Token
	}
	if got := keep("a.b.c"); got != "a.b.c" {
		t.Fatalf("a signed token kept: %q", got)
	}
	unknown := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256","kid":"emu-gone","typ":"JWT"}`))
	got := keep(unknown + kept[strings.IndexByte(kept, '.'):])
	if h := jwtHeader(t, got); h["kid"] == "emu-gone" || h["kid"] == oldKid {
		t.Fatalf("an unknown key's input signed with kid %v", h["kid"])
	}
	if _, err := jwt.ParseString(got, jwt.WithKeySet(set), jwt.WithValidate(true), jwt.WithAudience("backend")); err != nil {
		t.Fatalf("jwx refuses the token of an unknown key's input: %v", err)
	}

	var in cloudapi.Introspection
	form := "token=" + tokens[0]
	rq, _ := http.NewRequest("POST", b.url+cloudapi.PathIntrospect, strings.NewReader(form))
	rq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rq.Header.Set("Authorization", "Bearer test-key")
	if r, err := http.DefaultClient.Do(rq); err != nil {
		t.Fatal(err)
	} else {
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &in); err != nil || !in.Active {
			t.Fatalf("introspect: %s %v", b, err)
		}
	}
}
