package uaf

import (
	"errors"
	"testing"
)

func TestCheckFacetID(t *testing.T) {
	for id, ok := range map[string]bool{
		"https://login.example.com":                        true,
		"https://login.example.com:8443/":                  true,
		"http://127.0.0.1:8722":                            true,
		"android:apk-key-hash:2jmj7l5rSw0yVb/vlWAYkK/YBwk": true,
		"android:apk-key-hash:c2hvcC1hcHA":                 true,
		"ios:bundle-id:dev.authphone.cli":                  true,
		"":                                                 false,
		"authphone:cli":                                    false,
		"https://login.example.com/path":                   false,
		"https://login.example.com?x=1":                    false,
		"https://login.example.com#frag":                   false,
		"https://user@login.example.com":                   false,
		"ftp://login.example.com":                          false,
		"https://":                                         false,
		"android:apk-key-hash:":                            false,
		"android:apk-key-hash:no spaces":                   false,
		"ios:bundle-id:":                                   false,
		"ios:bundle-id:a b":                                false,
	} {
		err := CheckFacetID(id)
		if (err == nil) != ok || (err != nil && !errors.Is(err, ErrFacetID)) {
			t.Errorf("CheckFacetID(%q) = %v, want ok=%v", id, err, ok)
		}
	}
}

func FuzzCheckFacetID(f *testing.F) {
	for _, s := range []string{"https://a.example", "android:apk-key-hash:AAAA", "ios:bundle-id:x.y", "http://[::1]:80/", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if err := CheckFacetID(id); err != nil && !errors.Is(err, ErrFacetID) {
			t.Fatalf("%q: unwrapped error %v", id, err)
		}
	})
}
