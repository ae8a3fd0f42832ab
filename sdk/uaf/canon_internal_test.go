package uaf

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
)

// slowResponse is what encoding/json reads from s.
func slowResponse(s string) (Response, error) {
	var r Response
	arr := []any{&r}
	err := json.Unmarshal([]byte(s), &arr)
	return r, err
}

func canonSamples(t testing.TB) []string {
	var out []string
	for _, r := range []Response{
		{Header: Header{UPV: V1_1, Op: OpAuth, AppID: "https://cloud.example/appid", ServerData: "c2VydmVyZGF0YQ"},
			FCParams:   EncodeFCParams(FinalChallengeParams{AppID: "https://cloud.example/appid", Challenge: "Y2hhbGxlbmdl", FacetID: FacetIDForTest}),
			Assertions: []Assertion{{AssertionScheme: SchemeTLV, Assertion: "AT4AAQ"}}},
		{Header: Header{UPV: V1_0, Op: OpReg}, FCParams: "abc", Assertions: []Assertion{{AssertionScheme: SchemeTLV, Assertion: "x"}, {AssertionScheme: "other", Assertion: "y"}}},
		{Header: Header{UPV: Version{Major: 12, Minor: 0}, Op: "Auth", ServerData: "sd"}, FCParams: "a<b>&c"},
		{Header: Header{UPV: V1_1, Op: OpAuth, AppID: "é"}, Assertions: []Assertion{}},
	} {
		s, err := Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return append(out, `[{"header":{"upv":{"major":1,"minor":1},"op":"Auth"},"fcParams":"x","assertions":[{"assertionScheme":"UAFV1TLV","assertion":"y"}]}] `,
		`[{"header":{"upv":{"major":01,"minor":1},"op":"Auth"},"fcParams":"x","assertions":[{"assertionScheme":"UAFV1TLV","assertion":"y"}]}]`,
		`[{"header":{"upv":{"major":1,"minor":1},"op":"Au\u0074h"},"fcParams":"x","assertions":[{"assertionScheme":"UAFV1TLV","assertion":"y"}]}]`,
		`[{"header":{"upv":{"major":1,"minor":1},"op":"Auth"},"fcParams":"x","assertions":[{"assertionScheme":"UAFV1TLV","assertion":"y"}]},{}]`)
}

// FacetIDForTest is any facet.
const FacetIDForTest = "android:apk-key-hash:abc"

// checkResponse fails if the fast path accepts s and reads it otherwise
// than encoding/json.
func checkResponse(t testing.TB, s string) bool {
	fast, ok := decodeResponseFast(s)
	if !ok {
		return false
	}
	slow, err := slowResponse(s)
	if err != nil {
		t.Fatalf("fast path took %q, encoding/json refuses it: %v", s, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%q:\nfast %+v\nslow %+v", s, fast, slow)
	}
	return true
}

func TestDecodeResponseFastIsEncodingJSON(t *testing.T) {
	samples := canonSamples(t)
	if !checkResponse(t, samples[0]) || !checkResponse(t, samples[1]) {
		t.Fatal("the fast path refused what Encode writes")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = `{}[]":,\ 0123456789abuAé` + "\x00\x7f"
	for _, s := range samples {
		checkResponse(t, s)
		for range 3000 { // mutations: one byte changed, dropped or doubled
			b := []byte(s)
			i := rng.IntN(len(b))
			switch rng.IntN(3) {
			case 0:
				b[i] = alphabet[rng.IntN(len(alphabet))]
			case 1:
				b = append(b[:i], b[i+1:]...)
			default:
				b = append(b[:i+1], b[i:]...)
			}
			checkResponse(t, string(b))
		}
	}
}

func TestDecodeFCParamsFastIsEncodingJSON(t *testing.T) {
	s := EncodeFCParams(FinalChallengeParams{AppID: "https://cloud.example/appid", Challenge: "Y2hhbGxlbmdl", FacetID: FacetIDForTest})
	raw, _ := B64.DecodeString(s)
	if _, ok := decodeFCParamsFast(raw); !ok {
		t.Fatal("the fast path refused what EncodeFCParams writes")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const alphabet = `{}":,\ abcdé` + "\x00"
	for range 20000 {
		b := []byte(string(raw))
		i := rng.IntN(len(b))
		switch rng.IntN(3) {
		case 0:
			b[i] = alphabet[rng.IntN(len(alphabet))]
		case 1:
			b = append(b[:i], b[i+1:]...)
		default:
			b = append(b[:i+1], b[i:]...)
		}
		fast, ok := decodeFCParamsFast(b)
		if !ok {
			continue
		}
		var slow FinalChallengeParams
		if err := json.Unmarshal(b, &slow); err != nil || fast != slow {
			t.Fatalf("%q: fast %+v, encoding/json %+v %v", b, fast, slow, err)
		}
	}
}

func FuzzDecodeResponseFast(f *testing.F) {
	for _, s := range canonSamples(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkResponse(t, s) })
}
