package uaf_test

import (
	"errors"
	"testing"

	"github.com/authphone/authphone/sdk/uaf"
)

func TestDecodeOneMessage(t *testing.T) {
	var r uaf.AuthenticationRequest
	if err := uaf.Decode(`[{"header":{"upv":{"major":1,"minor":1},"op":"Auth","serverData":"sd"},"challenge":"c1"}]`, &r); err != nil {
		t.Fatal(err)
	}
	if r.Header.Op != uaf.OpAuth || r.Header.ServerData != "sd" || r.Challenge != "c1" {
		t.Fatalf("decoded %+v", r)
	}
	for _, bad := range []string{`[]`, `[{},{}]`, `[null]`, `["x"]`, `{}`, `[{"challenge":1}]`, ``} {
		var r uaf.AuthenticationRequest
		if err := uaf.Decode(bad, &r); !errors.Is(err, uaf.ErrMessage) {
			t.Errorf("Decode(%q) = %v, want ErrMessage", bad, err)
		}
	}
}
