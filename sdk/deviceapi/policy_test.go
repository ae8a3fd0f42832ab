package deviceapi_test

import (
	"encoding/json"
	"testing"

	"github.com/authphone/authphone/sdk/deviceapi"
	"github.com/authphone/authphone/sdk/uaf"
)

// TestRealServerPolicies: policies in the shapes real UAF servers send, and
// what the virtual phone does with each: register (with which signature
// algorithm) or refuse. The shapes follow nevisFIDO's documented policy
// examples (EC keys in DER, surrogate or full basic attestation, RSA-PSS),
// the UAF 1.0 specification's sample registration request from a Nok Nok
// test server (alternatives that need a transaction display), and servers
// that already hold a key of the user or select by user verification only.
func TestRealServerPolicies(t *testing.T) {
	const k1 = "a2V5LW9uZS1vZi10aGUtdXNlci0xMjM0NTY3ODkwMTI"
	pin, bio := deviceapi.AAIDPIN, deviceapi.AAIDBiometric
	der, raw := uaf.AlgSecp256r1SHA256DER, uaf.AlgSecp256r1SHA256Raw
	for _, tc := range []struct {
		name    string
		policy  string
		aaid    string
		wantAlg uint16 // 0: refused
	}{
		{"nevisFIDO: EC in DER, surrogate attestation",
			`{"accepted":[[{"aaid":["F1D0#0001","F1D0#0002","F1D0#0003"],"authenticationAlgorithms":[2],"assertionSchemes":["UAFV1TLV"],"attestationTypes":[15880]}]]}`, pin, der},
		{"nevisFIDO: EC in DER, either attestation",
			`{"accepted":[[{"aaid":["F1D0#0003"],"authenticationAlgorithms":[2],"attestationTypes":[15879,15880]}]]}`, bio, der},
		{"nevisFIDO: RSA-PSS only (legacy Android)",
			`{"accepted":[[{"aaid":["F1D0#0001"],"authenticationAlgorithms":[9]}]]}`, pin, 0},
		{"nevisFIDO: full basic attestation only",
			`{"accepted":[[{"aaid":["F1D0#0001"],"authenticationAlgorithms":[2],"attestationTypes":[15879]}]]}`, pin, 0},
		{"either encoding: raw preferred",
			`{"accepted":[[{"aaid":["F1D0#0001"],"authenticationAlgorithms":[1,2]}]]}`, pin, raw},
		{"UAF 1.0 sample: every alternative needs a transaction display",
			`{"accepted":[[{"userVerification":512,"keyProtection":1,"tcDisplay":1,"authenticationAlgorithms":[1],"assertionSchemes":["UAFV1TLV"]}],[{"userVerification":4,"keyProtection":1,"tcDisplay":1,"authenticationAlgorithms":[1],"assertionSchemes":["UAFV1TLV"]}],[{"userVerification":4,"keyProtection":1,"tcDisplay":1,"authenticationAlgorithms":[2]}]]}`, pin, 0},
		{"UAF 1.0 sample shape with a display-less alternative",
			`{"accepted":[[{"userVerification":4,"keyProtection":1,"tcDisplay":1,"authenticationAlgorithms":[1]}],[{"userVerification":4,"keyProtection":1,"authenticationAlgorithms":[2],"assertionSchemes":["UAFV1TLV"]}]],"disallowed":[{"userVerification":512}]}`, pin, der},
		{"user has one key already: a second phone registers",
			`{"accepted":[[{"aaid":["F1D0#0001"]}]],"disallowed":[{"aaid":["F1D0#0001"],"keyIDs":["` + k1 + `"]}]}`, pin, raw},
		{"only userVerification: passcode",
			`{"accepted":[[{"userVerification":4}]]}`, pin, raw},
		{"only userVerification: passcode, fingerprint phone",
			`{"accepted":[[{"userVerification":4}]]}`, bio, 0},
		{"hardware-backed keys only",
			`{"accepted":[[{"userVerification":4,"keyProtection":6}]]}`, pin, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p uaf.Policy
			if err := json.Unmarshal([]byte(tc.policy), &p); err != nil {
				t.Fatal(err)
			}
			alg, ok := deviceapi.AcceptedAlgorithm(p, tc.aaid)
			if ok != (tc.wantAlg != 0) || alg != tc.wantAlg {
				t.Errorf("AcceptedAlgorithm(%s) = %d, %v; want %d", tc.aaid, alg, ok, tc.wantAlg)
			}
		})
	}

	// Authentication: nevisFIDO names the key and its algorithm; a key
	// registered in DER matches, the same key described as raw does not.
	var auth uaf.Policy
	if err := json.Unmarshal([]byte(`{"accepted":[[{"aaid":["F1D0#0001"],"keyIDs":["`+k1+`"],"authenticationAlgorithms":[2]}]]}`), &auth); err != nil {
		t.Fatal(err)
	}
	if !auth.Matches(deviceapi.DescribeAlg(pin, k1, der)) || auth.Matches(deviceapi.DescribeAlg(pin, k1, raw)) || auth.Matches(deviceapi.DescribeAlg(pin, "b3RoZXI", der)) {
		t.Error("authentication policy with keyIDs and algorithm 2 matched the wrong keys")
	}
}

// FuzzPolicy: any policy a server sends is matched without panicking, and an
// algorithm AcceptedAlgorithm picks is one the policy accepts.
func FuzzPolicy(f *testing.F) {
	for _, s := range []string{
		`{"accepted":[[{"aaid":["F1D0#0001"],"authenticationAlgorithms":[2]}]]}`,
		`{"accepted":[[{"userVerification":2147483654,"keyProtection":6}]],"disallowed":[{"keyIDs":["x"]}]}`,
		`{"accepted":[[]]}`, `{}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var p uaf.Policy
		if json.Unmarshal([]byte(s), &p) != nil {
			return
		}
		for _, aaid := range []string{deviceapi.AAIDPIN, deviceapi.AAIDBiometric, deviceapi.AAIDHeadless} {
			if alg, ok := deviceapi.AcceptedAlgorithm(p, aaid); ok && !p.Accepts(deviceapi.DescribeAlg(aaid, "", alg)) {
				t.Fatalf("%s: picked %d, which %s does not accept", aaid, alg, s)
			}
		}
	})
}
