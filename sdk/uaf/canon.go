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

// uint reads a non-negative integer no larger than max, without a leading
// zero (but "0").
func (c *canon) uint(max uint64) uint64 {
	if !c.ok {
		return 0
	}
	var n uint64
	i := 0
	for i < len(c.b) && c.b[i] >= '0' && c.b[i] <= '9' {
		d := uint64(c.b[i] - '0')
		if n > (max-d)/10 {
			c.ok = false
			return 0
		}
		n = n*10 + d
		i++
	}
	if i == 0 || (i > 1 && c.b[0] == '0') {
		c.ok = false
		return 0
	}
	c.b = c.b[i:]
	return n
}

// field consumes the member name `"name":`, after a comma unless it is the
// object's first member, if it comes next.
func (c *canon) field(first *bool, name string) bool {
	if !c.ok {
		return false
	}
	b := c.b
	if !*first {
		if len(b) == 0 || b[0] != ',' {
			return false
		}
		b = b[1:]
	}
	if len(b) < len(name)+3 || b[0] != '"' || b[1:1+len(name)] != name || b[1+len(name)] != '"' || b[2+len(name)] != ':' {
		return false
	}
	c.b, *first = b[len(name)+3:], false
	return true
}

// strs reads a non-empty array of strings (an empty one is left to
// encoding/json: Encode omits it).
func (c *canon) strs() []string {
	c.lit(`["`)
	var out []string
	for c.ok {
		out = append(out, c.str())
		if !c.has(`,"`) {
			break
		}
	}
	c.lit(`]`)
	return out
}

// uint16s reads a non-empty array of uint16.
func (c *canon) uint16s() []uint16 {
	c.lit(`[`)
	var out []uint16
	for c.ok {
		out = append(out, uint16(c.uint(0xFFFF)))
		if !c.has(`,`) {
			break
		}
	}
	c.lit(`]`)
	return out
}

// header reads an OperationHeader.
func (c *canon) header() Header {
	var h Header
	c.lit(`{"upv":{"major":`)
	h.UPV.Major = c.small()
	c.lit(`,"minor":`)
	h.UPV.Minor = c.small()
	c.lit(`},"op":"`)
	h.Op = Operation(c.str())
	if c.has(`,"appID":"`) {
		h.AppID = c.str()
	}
	if c.has(`,"serverData":"`) {
		h.ServerData = c.str()
	}
	c.lit(`}`)
	return h
}

// criteria reads a MatchCriteria: its members in their order, each present
// only when not empty.
func (c *canon) criteria() MatchCriteria {
	var m MatchCriteria
	first := true
	c.lit(`{`)
	if c.field(&first, "aaid") {
		m.AAID = c.strs()
	}
	if c.field(&first, "vendorID") {
		m.VendorID = c.strs()
	}
	if c.field(&first, "keyIDs") {
		m.KeyIDs = c.strs()
	}
	if c.field(&first, "userVerification") {
		m.UserVerification = uint32(c.uint(0xFFFFFFFF))
	}
	if c.field(&first, "keyProtection") {
		m.KeyProtection = uint16(c.uint(0xFFFF))
	}
	if c.field(&first, "matcherProtection") {
		m.MatcherProtection = uint16(c.uint(0xFFFF))
	}
	if c.field(&first, "attachmentHint") {
		m.AttachmentHint = uint32(c.uint(0xFFFFFFFF))
	}
	if c.field(&first, "tcDisplay") {
		m.TCDisplay = uint16(c.uint(0xFFFF))
	}
	if c.field(&first, "authenticationAlgorithms") {
		m.AuthenticationAlgorithms = c.uint16s()
	}
	if c.field(&first, "assertionSchemes") {
		m.AssertionSchemes = c.strs()
	}
	if c.field(&first, "attestationTypes") {
		m.AttestationTypes = c.uint16s()
	}
	if c.field(&first, "authenticatorVersion") {
		m.AuthenticatorVersion = uint16(c.uint(0xFFFF))
	}
	c.lit(`}`)
	return m
}

// criteriaList reads a non-empty array of MatchCriteria.
func (c *canon) criteriaList() []MatchCriteria {
	c.lit(`[`)
	var out []MatchCriteria
	for c.ok {
		out = append(out, c.criteria())
		if !c.has(`,`) {
			break
		}
	}
	c.lit(`]`)
	return out
}

// policy reads a Policy.
func (c *canon) policy() Policy {
	var p Policy
	c.lit(`{"accepted":`)
	if !c.has(`null`) {
		c.lit(`[`)
		for c.ok {
			p.Accepted = append(p.Accepted, c.criteriaList())
			if !c.has(`,`) {
				break
			}
		}
		c.lit(`]`)
	}
	if c.has(`,"disallowed":`) {
		p.Disallowed = c.criteriaList()
	}
	c.lit(`}`)
	return p
}

// decodeAuthRequestFast reads a one-element array of an
// AuthenticationRequest as Encode writes it.
func decodeAuthRequestFast(s string) (AuthenticationRequest, bool) {
	c := canon{b: s, ok: true}
	var r AuthenticationRequest
	c.lit(`[{"header":`)
	r.Header = c.header()
	c.lit(`,"challenge":"`)
	r.Challenge = c.str()
	if c.has(`,"transaction":[`) {
		for c.ok {
			var t Transaction
			c.lit(`{"contentType":"`)
			t.ContentType = c.str()
			c.lit(`,"content":"`)
			t.Content = c.str()
			c.lit(`}`)
			r.Transaction = append(r.Transaction, t)
			if !c.has(`,`) {
				break
			}
		}
		c.lit(`]`)
	}
	c.lit(`,"policy":`)
	r.Policy = c.policy()
	c.lit(`}]`)
	return r, c.end()
}

// decodeRegRequestFast reads a one-element array of a RegistrationRequest
// as Encode writes it.
func decodeRegRequestFast(s string) (RegistrationRequest, bool) {
	c := canon{b: s, ok: true}
	var r RegistrationRequest
	c.lit(`[{"header":`)
	r.Header = c.header()
	c.lit(`,"challenge":"`)
	r.Challenge = c.str()
	c.lit(`,"username":"`)
	r.Username = c.str()
	c.lit(`,"policy":`)
	r.Policy = c.policy()
	c.lit(`}]`)
	return r, c.end()
}
