package uaf

import "strings"

// The fast paths below read the exact JSON that Encode and EncodeFCParams
// write (encoding/json's field order, no white space, strings of printable
// ASCII without escapes), which is what every approval carries; anything
// else (other order, white space, escapes, extra or missing members) is
// left to encoding/json. On the shapes they accept they give what
// json.Unmarshal gives into a zero value.

// canon reads one canonical JSON document; ok turns false at the first
// byte that is not what it expects.
type canon struct {
	b  string
	ok bool
}

// lit consumes s.
func (c *canon) lit(s string) {
	if c.ok && strings.HasPrefix(c.b, s) {
		c.b = c.b[len(s):]
		return
	}
	c.ok = false
}

// has consumes s if it comes next.
func (c *canon) has(s string) bool {
	if c.ok && strings.HasPrefix(c.b, s) {
		c.b = c.b[len(s):]
		return true
	}
	return false
}

// str consumes a string's content and its closing quote (the opening one
// is part of the literal before it): printable ASCII without '\'.
func (c *canon) str() string {
	if !c.ok {
		return ""
	}
	i := strings.IndexByte(c.b, '"')
	if i < 0 {
		c.ok = false
		return ""
	}
	for j := range i {
		if x := c.b[j]; x < 0x20 || x >= 0x7f || x == '\\' {
			c.ok = false
			return ""
		}
	}
	s := c.b[:i] // shares the document's memory
	c.b = c.b[i+1:]
	return s
}

// small consumes a non-negative integer of at most 4 digits without a
// leading zero (but "0").
func (c *canon) small() int {
	if !c.ok {
		return 0
	}
	n, i := 0, 0
	for i < len(c.b) && i < 5 && c.b[i] >= '0' && c.b[i] <= '9' {
		n = n*10 + int(c.b[i]-'0')
		i++
	}
	if i == 0 || i > 4 || (i > 1 && c.b[0] == '0') {
		c.ok = false
		return 0
	}
	c.b = c.b[i:]
	return n
}

// end reports whether the whole document was read.
func (c *canon) end() bool { return c.ok && len(c.b) == 0 }

// decodeFCParamsFast reads the fcParams JSON that EncodeFCParams writes
// (an empty channelBinding).
func decodeFCParamsFast(b []byte) (FinalChallengeParams, bool) {
	c := canon{b: string(b), ok: true}
	var p FinalChallengeParams
	c.lit(`{"appID":"`)
	p.AppID = c.str()
	c.lit(`,"challenge":"`)
	p.Challenge = c.str()
	c.lit(`,"facetID":"`)
	p.FacetID = c.str()
	c.lit(`,"channelBinding":{}}`)
	return p, c.end()
}

// decodeResponseFast reads a one-element array of a Response as Encode
// writes it.
func decodeResponseFast(s string) (Response, bool) {
	c := canon{b: s, ok: true}
	var r Response
	c.lit(`[{"header":{"upv":{"major":`)
	r.Header.UPV.Major = c.small()
	c.lit(`,"minor":`)
	r.Header.UPV.Minor = c.small()
	c.lit(`},"op":"`)
	r.Header.Op = Operation(c.str())
	if c.has(`,"appID":"`) {
		r.Header.AppID = c.str()
	}
	if c.has(`,"serverData":"`) {
		r.Header.ServerData = c.str()
	}
	c.lit(`},"fcParams":"`)
	r.FCParams = c.str()
	c.lit(`,"assertions":[`)
	for c.ok {
		var a Assertion
		c.lit(`{"assertionScheme":"`)
		a.AssertionScheme = c.str()
		c.lit(`,"assertion":"`)
		a.Assertion = c.str()
		c.lit(`}`)
		r.Assertions = append(r.Assertions, a)
		if !c.has(`,`) {
			break
		}
	}
	c.lit(`]}]`)
	return r, c.end()
}
