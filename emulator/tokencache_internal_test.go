package emulator

import "testing"

// The signed-token cache: a token signed while the keys were replaced
// (one of them gone) is not kept, since it would no longer verify; a
// reload that brings the same keys back keeps what is cached.
func TestTokenCacheDropsTokensOfGoneKeys(t *testing.T) {
	is, err := newIssuer()
	if err != nil {
		t.Fatal(err)
	}
	_, ok, gen := is.cachedToken("h.c1")
	if ok {
		t.Fatal("an empty cache has a token")
	}
	is.cacheToken("h.c1", "h.c1.s", gen)

	same := &issuer{keys: is.keys, secret: is.secret}
	is.replace(same) // a reload that finds the same keys
	if v, ok, _ := is.cachedToken("h.c1"); !ok || v != "h.c1.s" {
		t.Fatalf("after a reload of the same keys the cache has %q, %v; want it kept", v, ok)
	}

	_, _, gen = is.cachedToken("h.c2") // signed with the old key…
	other, err := newIssuer()
	if err != nil {
		t.Fatal(err)
	}
	is.replace(other) // …which an import replaces meanwhile
	is.cacheToken("h.c2", "h.c2.old", gen)
	if v, ok, _ := is.cachedToken("h.c2"); ok {
		t.Fatalf("a token signed with a key that went away is cached: %q", v)
	}
	if _, ok, _ := is.cachedToken("h.c1"); ok {
		t.Fatal("tokens of a key that went away stay cached")
	}
}
