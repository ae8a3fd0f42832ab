package dispatch

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"reflect"
	"testing"
)

// The hand-written JSON form against encoding/json: random payloads, then
// random mutations of their JSON.

var fastStrings = []string{"", "0b7f3d0e-4b1a-4c55-9a4e-3f1f2a6c9d10", "http://127.0.0.1:8722/_app/token/redeem/registration",
	"https://cloud.example/_app/token/redeem/authentication", "https://cloud.example/_app/token/redeem/launch", "a<b>&c", `q"uo\te/`,
	"tab\t\n", "Ünï", "\x00\x1f\x7f", "\xff", "\u2028"}

func randomPayload(r *rand.Rand) Payload {
	return Payload{Token: fastStrings[r.IntN(len(fastStrings))], RedeemURL: fastStrings[r.IntN(len(fastStrings))]}
}

func TestFastJSONMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		p := randomPayload(r)
		if got, want := p.JSON(), p.jsonStd(); !bytes.Equal(got, want) {
			t.Fatalf("%d %+v:\n got %s\nwant %s", i, p, got, want)
		}
		b := p.jsonStd()
		if got, want := p.Encode(), base64.RawURLEncoding.EncodeToString(b); got != want {
			t.Fatalf("%d %+v: Encode %s, want %s", i, p, got, want)
		}
		if got, want := p.AppLink("http://c.example/"), "http://c.example/open?dispatchTokenResponse="+base64.RawURLEncoding.EncodeToString(b); got != want {
			t.Fatalf("%d %+v: AppLink %s, want %s", i, p, got, want)
		}
		checkDecode(t, b)
		for range 6 {
			checkDecode(t, mutate(r, b))
		}
	}
	for _, s := range []string{`{"nma_data":null,"nma_data_content_type":"application/json","nma_data_version":"1"}`,
		`{"nma_data":{"token":"x","token":"y"},"nma_data_content_type":"application/json","nma_data_version":"1"}`,
		`{"nma_data":"x","nma_data_content_type":"application/jose","nma_data_version":"1"}`,
		`{"nma_data":{},"nma_data_content_type":"application/json","nma_data_version":"1","other":1}`,
		`{"NMA_DATA":{"Token":"0b7f3d0e-4b1a-4c55-9a4e-3f1f2a6c9d10"},"nma_data_content_type":"application/json","nma_data_version":"1"}`,
		`{"nma_data_content_type":"application/json","nma_data_version":"1"}`, `{}`, `{"nma_data":{}}`, ` {"nma_data":{}} `} {
		checkDecode(t, []byte(s))
	}
}

// The usual payload is read and written by hand, and the hand code knows
// every field of Payload and wire.
func TestFastJSONTaken(t *testing.T) {
	p := New("http://127.0.0.1:8722", Authentication, "0b7f3d0e-4b1a-4c55-9a4e-3f1f2a6c9d10")
	if _, ok := p.appendJSON(nil); !ok {
		t.Error("the payload was not written by hand")
	}
	if _, _, ok := decodeFast(p.JSON()); !ok {
		t.Error("the payload was not read by hand")
	}
	if n := len(fieldsOf(Payload{})); n != 2 {
		t.Errorf("Payload has %d fields, its hand-written JSON 2: write the new ones", n)
	}
	if n := len(fieldsOf(wire{})); n != 3 {
		t.Errorf("wire has %d fields, its hand-written JSON 3: write the new ones", n)
	}
}

// checkDecode decodes b by hand (falling back as decodeJSON does) and with
// encoding/json alone: the same payload, the same error.
func checkDecode(t *testing.T, b []byte) {
	t.Helper()
	got, gerr := decodeJSON(b)
	want, werr := decodeJSONStd(b)
	if got != want || (gerr == nil) != (werr == nil) || (gerr != nil && gerr.Error() != werr.Error()) {
		t.Fatalf("%q:\n got %+v %v\nwant %+v %v", b, got, gerr, want, werr)
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

func FuzzDecodeJSONFast(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 4 {
		f.Add(randomPayload(r).jsonStd())
	}
	f.Add(New("http://127.0.0.1:8722", Registration, "0b7f3d0e-4b1a-4c55-9a4e-3f1f2a6c9d10").JSON())
	f.Fuzz(func(t *testing.T, b []byte) { checkDecode(t, b) })
}

func fieldsOf(v any) []string {
	var out []string
	for f := range reflect.TypeOf(v).Fields() {
		out = append(out, f.Name)
	}
	return out
}
