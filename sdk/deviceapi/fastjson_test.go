package deviceapi

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/authphone/authphone/sdk/trustapi"
)

// The hand-written bodies against encoding/json: random values, then
// random mutations of their JSON.

var fastStrings = []string{"", "Reg", "inbox", "a<b>&c", `q"uo\te/`, "tab\t\n", "Ünï", "\x00\x1f\x7f", "\xff", "\u2028",
	`[{"header":{"upv":{"major":1,"minor":1},"op":"Reg","appID":"http://cloud.invalid/_app/facets","serverData":"x"},"challenge":"y"}]`}

func fastString(r *rand.Rand) string { return fastStrings[r.IntN(len(fastStrings))] }

var fastRaws = []string{`{"crv":"P-256","kty":"EC","x":"AQ","y":"Ag"}`, `{"kty": "EC"}`, "{\"a\":\n1}", `{"a":"<"}`, `{"a":"\u0041"}`,
	`[1,2,{"b":null,"b":true}]`, `{"a":1.5}`, `null`, `"s"`, `{"a":}`, `{`, `{"é":1}`}

var fastTimes = []time.Time{{}, time.Date(2026, 12, 3, 13, 4, 5, 123456789, time.UTC), time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600)),
	time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}

func randomStrings(r *rand.Rand) []string {
	switch r.IntN(4) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	out := make([]string, 1+r.IntN(3))
	for i := range out {
		out[i] = fastString(r)
	}
	return out
}

func randomInts(r *rand.Rand) []int {
	if r.IntN(2) == 0 {
		return nil
	}
	out := []int{}
	for range r.IntN(4) {
		out = append(out, r.IntN(100)-3)
	}
	return out
}

func randomRedeemResponse(r *rand.Rand) RedeemResponse {
	return RedeemResponse{StatusCode: r.IntN(2000) - 100, UAFRequest: fastString(r), Op: fastString(r), LifetimeMillis: r.Int64N(1<<40) - 5,
		NumberChoices: randomInts(r)}
}

func randomInboxMessage(r *rand.Rand) InboxMessage {
	m := InboxMessage{ID: fastString(r), CreatedAt: fastTimes[r.IntN(len(fastTimes))], ExpiresAt: fastTimes[r.IntN(len(fastTimes))],
		Payload: fastString(r), NotificationMessage: fastString(r), Kind: InboxKind(fastString(r)), Message: fastString(r),
		TransactionID: fastString(r), NumberChoices: randomInts(r), KeyID: fastString(r)}
	if r.IntN(2) == 0 {
		u := randomRedeemResponse(r)
		m.UAF = &u
	}
	if r.IntN(8) == 0 {
		m.LoginRequest = &trustapi.LoginRequestInfo{RequestID: fastString(r), CreatedAt: fastTimes[1]}
	}
	return m
}

func randomDispatchTarget(r *rand.Rand) DispatchTarget {
	v := DispatchTarget{Name: fastString(r), DeviceID: fastString(r), Dispatcher: fastString(r), Username: fastString(r)}
	if r.IntN(5) != 0 {
		v.SignatureKey = json.RawMessage(fastRaws[r.IntN(len(fastRaws))])
	}
	return v
}

func randomBody(r *rand.Rand) any {
	switch r.IntN(8) {
	case 6:
		v := InboxesRequest{KeyIDs: randomStrings(r), UAF: r.IntN(2) == 0}
		if r.IntN(5) != 0 {
			v.DeviceKey = json.RawMessage(fastRaws[r.IntN(len(fastRaws))])
		}
		return v
	case 7:
		v := InboxesResponse{Unknown: randomStrings(r)}
		if r.IntN(6) != 0 {
			v.Messages = []InboxMessage{}
			for range r.IntN(3) {
				v.Messages = append(v.Messages, randomInboxMessage(r))
			}
		}
		return v
	case 0:
		return RedeemRequest{Token: fastString(r)}
	case 1:
		v := UAFBody{UAFResponse: fastString(r)}
		if r.IntN(4) == 0 {
			v.Context = json.RawMessage(`{"number":42}`)
		}
		if r.IntN(2) == 0 {
			t := randomDispatchTarget(r)
			v.DispatchTarget = &t
		}
		return v
	case 2:
		return randomDispatchTarget(r)
	case 3:
		return randomRedeemResponse(r)
	case 4:
		return StatusBody{StatusCode: r.IntN(2000), Description: fastString(r), UserID: fastString(r), AuthenticatorID: fastString(r),
			DispatchTarget: r.IntN(2) == 0}
	}
	return DispatchTargetResponse{ID: fastString(r)}
}

func TestFastBodiesMatchEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 30000 {
		v := randomBody(r)
		want, werr := json.Marshal(v)
		got, gerr := Marshal(v)
		if (werr != nil) != (gerr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("%d %T %+v:\n got %s %v\nwant %s %v", i, v, v, got, gerr, want, werr)
		}
		if werr != nil {
			continue
		}
		checkUnmarshal(t, v, want)
		for range 4 {
			checkUnmarshal(t, v, mutate(r, want))
		}
	}
}

// checkUnmarshal decodes b into a zero value of v's type both ways.
func checkUnmarshal(t *testing.T, v any, b []byte) {
	t.Helper()
	want := reflect.New(reflect.TypeOf(v)).Interface()
	got := reflect.New(reflect.TypeOf(v)).Interface()
	werr := json.Unmarshal(b, want)
	gerr := Unmarshal(b, got)
	if (werr != nil) != (gerr != nil) || !reflect.DeepEqual(want, got) {
		t.Fatalf("%T %q:\n got %+v %v\nwant %+v %v", v, b, got, gerr, want, werr)
	}
}

func mutate(r *rand.Rand, b []byte) []byte {
	out := bytes.Clone(b)
	i := r.IntN(len(out))
	switch r.IntN(6) {
	case 0:
		return append(out[:i:i], out[i+1:]...)
	case 1:
		const ins = "{}[],:\"\\ 0-1.eEtfn\x00é"
		return append(out[:i:i], append([]byte{ins[r.IntN(len(ins))]}, out[i:]...)...)
	case 2:
		out[i] = byte(r.IntN(256))
	case 3:
		return append(out[:i:i], append([]byte{out[i]}, out[i:]...)...)
	case 4:
		return append(out[:i:i], append([]byte(" \n"), out[i:]...)...)
	case 5:
		if c := out[i]; c >= 'a' && c <= 'z' {
			out[i] = c - 32
		}
	}
	return out
}

// A value that is not zero is decoded by encoding/json, which keeps what
// the JSON does not name.
func TestUnmarshalIntoAFilledValue(t *testing.T) {
	got := RedeemResponse{Op: "kept", NumberChoices: []int{1}}
	want := got
	b := []byte(`{"statusCode":1200}`)
	if err := Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &want); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%+v, want %+v", got, want)
	}
}

// The usual bodies are written and read by hand, and the hand code knows
// every field of its types.
func TestFastBodiesTaken(t *testing.T) {
	jwk := json.RawMessage(`{"crv":"P-256","kty":"EC","x":"AQ","y":"Ag"}`)
	for _, v := range []any{RedeemRequest{Token: "t"}, UAFBody{UAFResponse: `[{"a":"b"}]`},
		UAFBody{UAFResponse: `[{"a":"b"}]`, DispatchTarget: &DispatchTarget{Name: "n", DeviceID: "d", Dispatcher: "inbox", SignatureKey: jwk}},
		StatusBody{StatusCode: StatusOK, UserID: "u", AuthenticatorID: "a", DispatchTarget: true}, DispatchTarget{Name: "n", DeviceID: "d", Dispatcher: "inbox", SignatureKey: jwk},
		RedeemResponse{StatusCode: StatusOK, UAFRequest: `[{"a":"b"}]`, Op: "Reg", LifetimeMillis: 1}, StatusBody{StatusCode: StatusOK, UserID: "u"},
		DispatchTargetResponse{ID: "i"}, InboxesRequest{DeviceKey: jwk, KeyIDs: []string{"k1", "k2"}, UAF: true},
		InboxesResponse{Messages: []InboxMessage{{ID: "i", CreatedAt: time.Now(), ExpiresAt: time.Now(), Payload: "p", Kind: InboxAuthentication,
			Message: "Pay 10 EUR?", TransactionID: "t", NumberChoices: []int{1, 2}, KeyID: "k",
			UAF: &RedeemResponse{StatusCode: StatusOK, UAFRequest: `[{"a":"b"}]`, Op: "Auth", LifetimeMillis: 1}}}, Unknown: []string{"k2"}}} {
		b, ok := AppendJSON(nil, v)
		if !ok {
			t.Errorf("%T was not written by hand", v)
		}
		if !decodeFast(b, reflect.New(reflect.TypeOf(v)).Interface()) {
			t.Errorf("%T was not read by hand", v)
		}
	}
	for _, c := range []struct {
		v any
		n int
	}{{RedeemRequest{}, 1}, {UAFBody{}, 3}, {DispatchTarget{}, 5}, {RedeemResponse{}, 5}, {StatusBody{}, 5}, {DispatchTargetResponse{}, 1},
		{InboxesRequest{}, 3}, {InboxesResponse{}, 2}, {InboxMessage{}, 12}} {
		if got := reflect.TypeOf(c.v).NumField(); got != c.n {
			t.Errorf("%T has %d fields, its hand-written JSON %d: write the new ones (fastjson.go)", c.v, got, c.n)
		}
	}
}

func FuzzUnmarshalFast(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 6 {
		b, _ := json.Marshal(randomBody(r))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range []any{RedeemRequest{}, UAFBody{}, DispatchTarget{}, RedeemResponse{}, StatusBody{}, DispatchTargetResponse{},
			InboxesRequest{}, InboxesResponse{}} {
			checkUnmarshal(t, v, b)
		}
	})
}
