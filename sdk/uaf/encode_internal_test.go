package uaf

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
)

// randMessages makes messages of every type encodeFast knows, with random
// strings (some that encoding/json escapes), numbers and optional members.
func randMessages(rng *rand.Rand, n int) []any {
	str := func() string {
		const alphabet = "abcXYZ019-_.:/#=+ <>&\"\\é\x00\x1f\x7f"
		if rng.IntN(4) == 0 {
			return ""
		}
		b := make([]byte, 0, 12)
		for range rng.IntN(12) {
			if rng.IntN(8) == 0 {
				b = append(b, alphabet[rng.IntN(len(alphabet))])
			} else {
				b = append(b, alphabet[rng.IntN(19)])
			}
		}
		return string(b)
	}
	strs := func() []string {
		switch rng.IntN(4) {
		case 0:
			return nil
		case 1:
			return []string{}
		}
		out := make([]string, 1+rng.IntN(3))
		for i := range out {
			out[i] = str()
		}
		return out
	}
	u16s := func() []uint16 {
		if rng.IntN(3) == 0 {
			return nil
		}
		out := make([]uint16, rng.IntN(3))
		for i := range out {
			out[i] = uint16(rng.Uint32())
		}
		return out
	}
	num := func() uint32 {
		switch rng.IntN(3) {
		case 0:
			return 0
		case 1:
			return rng.Uint32()
		}
		return uint32(rng.IntN(10))
	}
	mc := func() MatchCriteria {
		return MatchCriteria{AAID: strs(), VendorID: strs(), KeyIDs: strs(), UserVerification: num(), KeyProtection: uint16(num()),
			MatcherProtection: uint16(num()), AttachmentHint: num(), TCDisplay: uint16(num()), AuthenticationAlgorithms: u16s(),
			AssertionSchemes: strs(), AttestationTypes: u16s(), AuthenticatorVersion: uint16(num())}
	}
	mcs := func() []MatchCriteria {
		if rng.IntN(5) == 0 {
			return nil
		}
		out := make([]MatchCriteria, rng.IntN(3))
		for i := range out {
			out[i] = mc()
		}
		return out
	}
	pol := func() Policy {
		var p Policy
		if rng.IntN(5) != 0 {
			p.Accepted = make([][]MatchCriteria, rng.IntN(3))
			for i := range p.Accepted {
				p.Accepted[i] = mcs()
			}
		}
		p.Disallowed = mcs()
		return p
	}
	hdr := func() Header {
		return Header{UPV: Version{Major: rng.IntN(3) - 1, Minor: rng.IntN(20000)}, Op: Operation(str()), AppID: str(), ServerData: str()}
	}
	var out []any
	for range n {
		var as []Assertion
		if rng.IntN(4) != 0 {
			as = make([]Assertion, rng.IntN(3))
			for i := range as {
				as[i] = Assertion{AssertionScheme: str(), Assertion: str()}
			}
		}
		var tx []Transaction
		if rng.IntN(2) == 0 {
			tx = make([]Transaction, rng.IntN(3))
			for i := range tx {
				tx[i] = Transaction{ContentType: str(), Content: str()}
			}
		}
		r := Response{Header: hdr(), FCParams: str(), Assertions: as}
		a := AuthenticationRequest{Header: hdr(), Challenge: str(), Transaction: tx, Policy: pol()}
		g := RegistrationRequest{Header: hdr(), Challenge: str(), Username: str(), Policy: pol()}
		out = append(out, r, &r, a, &a, g, &g)
	}
	return out
}

func TestEncodeFastIsEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	fast := 0
	for _, m := range randMessages(rng, 3000) {
		want, err := json.Marshal([]any{m})
		if err != nil {
			t.Fatal(err)
		}
		got, ok := encodeFast(m)
		if !ok {
			continue
		}
		fast++
		if got != string(want) {
			t.Fatalf("%#v:\nfast %s\njson %s", m, got, want)
		}
	}
	if fast < 1000 {
		t.Fatalf("the fast path took only %d messages", fast)
	}
	if _, ok := encodeFast((*Response)(nil)); ok {
		t.Fatal("a nil *Response took the fast path")
	}
	if _, ok := encodeFast(DeregistrationRequest{}); ok {
		t.Fatal("a DeregistrationRequest took the fast path")
	}
}

func TestEncodeFCParamsIsEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, m := range randMessages(rng, 500) {
		r, ok := m.(Response)
		if !ok {
			continue
		}
		p := FinalChallengeParams{AppID: r.Header.AppID, Challenge: r.FCParams, FacetID: r.Header.ServerData,
			ChannelBinding: ChannelBinding{ServerEndPoint: string(r.Header.Op), TLSUnique: r.FCParams}}
		if rng.IntN(2) == 0 {
			p.ChannelBinding = ChannelBinding{TLSServerCertificate: r.Header.AppID, CIDPubkey: r.Header.ServerData}
		}
		want, _ := json.Marshal(p)
		if got := EncodeFCParams(p); got != B64.EncodeToString(want) {
			t.Fatalf("%+v: %s, encoding/json %s", p, got, B64.EncodeToString(want))
		}
	}
}

// checkRequest fails if a request fast path accepts s and reads it
// otherwise than encoding/json.
func checkRequest(t testing.TB, s string) (auth, reg bool) {
	if fast, ok := decodeAuthRequestFast(s); ok {
		var slow AuthenticationRequest
		if err := json.Unmarshal([]byte(s), &[]any{&slow}); err != nil {
			t.Fatalf("fast path took %q, encoding/json refuses it: %v", s, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q:\nfast %+v\nslow %+v", s, fast, slow)
		}
		auth = true
	}
	if fast, ok := decodeRegRequestFast(s); ok {
		var slow RegistrationRequest
		if err := json.Unmarshal([]byte(s), &[]any{&slow}); err != nil {
			t.Fatalf("fast path took %q, encoding/json refuses it: %v", s, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q:\nfast %+v\nslow %+v", s, fast, slow)
		}
		reg = true
	}
	return auth, reg
}

func requestSamples(t testing.TB) []string {
	pol := Policy{Accepted: [][]MatchCriteria{{{AAID: []string{"F1D0#0001"}, KeyIDs: []string{"a2V5"}}}, {{AAID: []string{"F1D0#0002"}, UserVerification: 2, AuthenticationAlgorithms: []uint16{1, 2}}}},
		Disallowed: []MatchCriteria{{AAID: []string{"F1D0#0001"}, KeyIDs: []string{"b2xk"}, AssertionSchemes: []string{SchemeTLV}, AttestationTypes: []uint16{AttestationBasicSurrogate}, AuthenticatorVersion: 1}}}
	var out []string
	for _, m := range []any{
		AuthenticationRequest{Header: Header{UPV: V1_1, Op: OpAuth, AppID: "https://cloud.example/_app/facets", ServerData: "c2Q"}, Challenge: "Y2g", Policy: pol},
		AuthenticationRequest{Header: Header{UPV: V1_0, Op: OpAuth}, Challenge: "Y2g", Transaction: []Transaction{{ContentType: "text/plain", Content: "UGF5"}},
			Policy: Policy{Accepted: [][]MatchCriteria{{{AAID: []string{"F1D0#0001"}, KeyIDs: []string{"a2V5"}}}}}},
		RegistrationRequest{Header: Header{UPV: V1_1, Op: OpReg, AppID: "https://cloud.example/_app/facets", ServerData: "c2Q"}, Challenge: "Y2g", Username: "alice", Policy: pol},
		RegistrationRequest{Header: Header{UPV: V1_1, Op: OpReg}, Policy: Policy{Accepted: [][]MatchCriteria{{{}}, {}}}},
	} {
		s, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func TestDecodeRequestFastIsEncodingJSON(t *testing.T) {
	samples := requestSamples(t)
	for i, s := range samples[:3] {
		if a, r := checkRequest(t, s); !a && !r {
			t.Fatalf("the fast path refused what Encode writes: %s (%d)", s, i)
		}
	}
	rng := rand.New(rand.NewPCG(9, 10))
	const alphabet = `{}[]":,\ 0123456789abnulAé` + "\x00\x7f"
	for _, s := range samples {
		for range 4000 { // mutations: one byte changed, dropped or doubled
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
			checkRequest(t, string(b))
		}
	}
	// Random messages, as Encode writes them.
	n := 0
	for _, m := range randMessages(rand.New(rand.NewPCG(11, 12)), 2000) {
		s, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if a, r := checkRequest(t, s); a || r {
			n++
		}
	}
	if n < 50 {
		t.Fatalf("the fast paths took only %d random requests", n)
	}
}

func FuzzDecodeRequestFast(f *testing.F) {
	for _, s := range requestSamples(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkRequest(t, s) })
}
