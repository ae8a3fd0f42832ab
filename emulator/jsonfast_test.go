package emulator

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/authphone/authphone/sdk/cloudapi"
	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/uaf"
)

// The hand-written answers against json.Encoder.

var answerStrings = []string{"", "Reg", "Auth", "no such token", "a<b>&c", `q"uo\te`, "tab\t", "Ünï", "\x00", "\xff", "\u2028",
	`{"header":{"upv":{"major":1,"minor":1},"op":"Reg","appID":"http://cloud.invalid/_app/facets","serverData":"x"},"challenge":"y"}`}

func answerString(r *rand.Rand) string { return answerStrings[r.IntN(len(answerStrings))] }

func randomAnswer(r *rand.Rand) any {
	switch r.IntN(5) {
	case 0:
		v := deviceapi.RedeemResponse{StatusCode: r.IntN(2000) - 100, UAFRequest: answerString(r), Op: answerString(r), LifetimeMillis: r.Int64N(1<<40) - 5}
		if r.IntN(2) == 0 {
			v.NumberChoices = []int{}
			for range r.IntN(4) {
				v.NumberChoices = append(v.NumberChoices, r.IntN(100)-3)
			}
		}
		return v
	case 1:
		return deviceapi.StatusBody{StatusCode: r.IntN(2000), Description: answerString(r), UserID: answerString(r), AuthenticatorID: answerString(r),
			DispatchTarget: r.IntN(2) == 0}
	case 2:
		now := time.Date(2026, 12, 3, 9, 0, 0, r.IntN(1e9), time.UTC)
		return cloudapi.StatusResponse{TransactionID: answerString(r), Status: answerString(r), Token: answerString(r), CreatedAt: now, Reason: answerString(r)}
	case 3:
		return cloudapi.ApprovalResponse{TransactionID: answerString(r), StatusToken: answerString(r), UserID: answerString(r), Number: r.IntN(3)}
	}
	return cloudapi.User{UserID: answerString(r), Username: answerString(r), Authenticators: []cloudapi.Authenticator{},
		Enrollment: &cloudapi.Enrollment{TransactionID: answerString(r), AppLinkURI: answerString(r)}}
}

func TestWriteFastMatchesEncoder(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 20000 {
		v := randomAnswer(r)
		var want bytes.Buffer
		_ = json.NewEncoder(&want).Encode(v)
		rec := httptest.NewRecorder()
		writeJSON(rec, 200, v)
		if !bytes.Equal(rec.Body.Bytes(), want.Bytes()) {
			t.Fatalf("%d %T:\n got %s\nwant %s", i, v, rec.Body.Bytes(), want.Bytes())
		}
	}
	// The usual answers are written by hand.
	enc, _ := uaf.Encode(uaf.RegistrationRequest{Header: uaf.Header{Op: uaf.OpReg, AppID: "http://cloud.invalid/_app/facets"}, Challenge: "c"})
	for _, v := range []any{deviceapi.RedeemResponse{StatusCode: deviceapi.StatusOK, UAFRequest: enc, Op: "Reg", LifetimeMillis: 120000},
		deviceapi.StatusBody{StatusCode: deviceapi.StatusOK, UserID: "u", AuthenticatorID: "a", DispatchTarget: true}} {
		if _, ok := appendAnswer(nil, v); !ok {
			t.Errorf("%T was not written by hand", v)
		}
	}
}

// TestWriteFastKnowsEveryField fails when a hand-written answer's type
// gains a field: its encoder (here and in cloudapi) must write it too.
func TestWriteFastKnowsEveryField(t *testing.T) {
	for _, c := range []struct {
		v any
		n int
	}{{deviceapi.RedeemResponse{}, 5}, {deviceapi.StatusBody{}, 5}, {cloudapi.User{}, 10}, {cloudapi.Authenticator{}, 9},
		{cloudapi.AuthenticatorUAF{}, 3}, {cloudapi.RateLimit{}, 4}, {cloudapi.Enrollment{}, 4}, {cloudapi.QRCode{}, 4},
		{cloudapi.ApprovalResponse{}, 8}, {cloudapi.StatusResponse{}, 8}} {
		if got := reflect.TypeOf(c.v).NumField(); got != c.n {
			t.Errorf("%T has %d fields, its hand-written JSON %d: write the new ones (cloudapi/fastjson.go, emulator/jsonfast.go)", c.v, got, c.n)
		}
	}
}

func TestTransactionClaimsMatchEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for i := range 20000 {
		c := transactionClaims{Exp: r.Int64() - r.Int64(), Iat: r.Int64N(1 << 40), Iss: answerString(r), Jti: answerString(r),
			Nbf: -r.Int64N(5), Scope: answerString(r), Sub: answerString(r), Txn: answerString(r)}
		switch r.IntN(3) {
		case 0:
			c.Aud = []string{"backend"}
		case 1:
			c.Aud = []string{answerString(r), answerString(r)}
		}
		want, _ := json.Marshal(c)
		got, err := appendTransactionClaims([]byte("x"), &c)
		if err != nil || !bytes.Equal(got, append([]byte("x"), want...)) {
			t.Fatalf("%d:\n got %s %v\nwant x%s", i, got, err, want)
		}
	}
}
