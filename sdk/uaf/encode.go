package uaf

import (
	"strconv"
	"sync"
)

// The encoder below writes, by hand, exactly what encoding/json writes for
// the messages of every approval and enrolment (Response,
// AuthenticationRequest, RegistrationRequest, FinalChallengeParams): field
// order, omitempty, no white space. It takes only strings that
// encoding/json copies unchanged (printable ASCII but '"', '\', '<', '>'
// and '&'); a message with any other string is left to encoding/json.

// enc appends one JSON document; ok turns false at a string it does not
// take.
type enc struct {
	b  []byte
	ok bool
}

// plain reports whether encoding/json writes s between quotes unchanged.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		switch x := s[i]; {
		case x < 0x20 || x >= 0x7f, x == '"', x == '\\', x == '<', x == '>', x == '&':
			return false
		}
	}
	return true
}

func (e *enc) lit(s string) { e.b = append(e.b, s...) }

// str appends a string's content and its closing quote (the opening one
// is part of the literal before it).
func (e *enc) str(s string) {
	if !plain(s) {
		e.ok = false
		return
	}
	e.b = append(e.b, s...)
	e.b = append(e.b, '"')
}

// field appends `"name":`, after a comma unless it is the object's first
// member.
func (e *enc) field(first *bool, name string) {
	if !*first {
		e.b = append(e.b, ',')
	}
	*first = false
	e.b = append(e.b, '"')
	e.b = append(e.b, name...)
	e.b = append(e.b, '"', ':')
}

func (e *enc) strs(xs []string) {
	e.b = append(e.b, '[')
	for i, x := range xs {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.b = append(e.b, '"')
		e.str(x)
	}
	e.b = append(e.b, ']')
}

func (e *enc) uint16s(xs []uint16) {
	e.b = append(e.b, '[')
	for i, x := range xs {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.b = strconv.AppendUint(e.b, uint64(x), 10)
	}
	e.b = append(e.b, ']')
}

func (e *enc) header(h Header) {
	e.lit(`{"upv":{"major":`)
	e.b = strconv.AppendInt(e.b, int64(h.UPV.Major), 10)
	e.lit(`,"minor":`)
	e.b = strconv.AppendInt(e.b, int64(h.UPV.Minor), 10)
	e.lit(`},"op":"`)
	e.str(string(h.Op))
	if h.AppID != "" {
		e.lit(`,"appID":"`)
		e.str(h.AppID)
	}
	if h.ServerData != "" {
		e.lit(`,"serverData":"`)
		e.str(h.ServerData)
	}
	e.lit(`}`)
}

func (e *enc) criteria(m *MatchCriteria) {
	first := true
	e.lit(`{`)
	if len(m.AAID) > 0 {
		e.field(&first, "aaid")
		e.strs(m.AAID)
	}
	if len(m.VendorID) > 0 {
		e.field(&first, "vendorID")
		e.strs(m.VendorID)
	}
	if len(m.KeyIDs) > 0 {
		e.field(&first, "keyIDs")
		e.strs(m.KeyIDs)
	}
	num := func(name string, v uint64) {
		if v != 0 {
			e.field(&first, name)
			e.b = strconv.AppendUint(e.b, v, 10)
		}
	}
	num("userVerification", uint64(m.UserVerification))
	num("keyProtection", uint64(m.KeyProtection))
	num("matcherProtection", uint64(m.MatcherProtection))
	num("attachmentHint", uint64(m.AttachmentHint))
	num("tcDisplay", uint64(m.TCDisplay))
	if len(m.AuthenticationAlgorithms) > 0 {
		e.field(&first, "authenticationAlgorithms")
		e.uint16s(m.AuthenticationAlgorithms)
	}
	if len(m.AssertionSchemes) > 0 {
		e.field(&first, "assertionSchemes")
		e.strs(m.AssertionSchemes)
	}
	if len(m.AttestationTypes) > 0 {
		e.field(&first, "attestationTypes")
		e.uint16s(m.AttestationTypes)
	}
	num("authenticatorVersion", uint64(m.AuthenticatorVersion))
	e.lit(`}`)
}

// criteriaList writes a list, null when nil as encoding/json does.
func (e *enc) criteriaList(l []MatchCriteria) {
	if l == nil {
		e.lit(`null`)
		return
	}
	e.b = append(e.b, '[')
	for i := range l {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.criteria(&l[i])
	}
	e.b = append(e.b, ']')
}

func (e *enc) policy(p *Policy) {
	e.lit(`{"accepted":`)
	if p.Accepted == nil {
		e.lit(`null`)
	} else {
		e.b = append(e.b, '[')
		for i, l := range p.Accepted {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.criteriaList(l)
		}
		e.b = append(e.b, ']')
	}
	if len(p.Disallowed) > 0 {
		e.lit(`,"disallowed":`)
		e.criteriaList(p.Disallowed)
	}
	e.lit(`}`)
}

func (e *enc) response(r *Response) {
	e.lit(`[{"header":`)
	e.header(r.Header)
	e.lit(`,"fcParams":"`)
	e.str(r.FCParams)
	e.lit(`,"assertions":`)
	if r.Assertions == nil {
		e.lit(`null`)
	} else {
		e.b = append(e.b, '[')
		for i, a := range r.Assertions {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.lit(`{"assertionScheme":"`)
			e.str(a.AssertionScheme)
			e.lit(`,"assertion":"`)
			e.str(a.Assertion)
			e.lit(`}`)
		}
		e.b = append(e.b, ']')
	}
	e.lit(`}]`)
}

func (e *enc) authRequest(r *AuthenticationRequest) {
	e.lit(`[{"header":`)
	e.header(r.Header)
	e.lit(`,"challenge":"`)
	e.str(r.Challenge)
	if len(r.Transaction) > 0 {
		e.lit(`,"transaction":[`)
		for i, t := range r.Transaction {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.lit(`{"contentType":"`)
			e.str(t.ContentType)
			e.lit(`,"content":"`)
			e.str(t.Content)
			e.lit(`}`)
		}
		e.lit(`]`)
	}
	e.lit(`,"policy":`)
	e.policy(&r.Policy)
	e.lit(`}]`)
}

func (e *enc) regRequest(r *RegistrationRequest) {
	e.lit(`[{"header":`)
	e.header(r.Header)
	e.lit(`,"challenge":"`)
	e.str(r.Challenge)
	e.lit(`,"username":"`)
	e.str(r.Username)
	e.lit(`,"policy":`)
	e.policy(&r.Policy)
	e.lit(`}]`)
}

func (e *enc) fcParams(p *FinalChallengeParams) {
	e.lit(`{"appID":"`)
	e.str(p.AppID)
	e.lit(`,"challenge":"`)
	e.str(p.Challenge)
	e.lit(`,"facetID":"`)
	e.str(p.FacetID)
	e.lit(`,"channelBinding":{`)
	first := true
	for _, f := range [...]struct{ name, v string }{
		{"serverEndPoint", p.ChannelBinding.ServerEndPoint},
		{"tlsServerCertificate", p.ChannelBinding.TLSServerCertificate},
		{"tlsUnique", p.ChannelBinding.TLSUnique},
		{"cid_pubkey", p.ChannelBinding.CIDPubkey},
	} {
		if f.v != "" {
			e.field(&first, f.name)
			e.b = append(e.b, '"')
			e.str(f.v)
		}
	}
	e.lit(`}}`)
}

// scratch holds encodeFast's buffers between calls: the only allocation
// left is the string.
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// encodeFast writes msg as Encode does, for the message types it knows;
// ok is false for any other (or a string it does not take).
func encodeFast(msg any) (string, bool) {
	bp := scratch.Get().(*[]byte)
	e := enc{b: (*bp)[:0], ok: true}
	switch m := msg.(type) {
	case Response:
		e.response(&m)
	case *Response:
		e.ok = m != nil
		if e.ok {
			e.response(m)
		}
	case AuthenticationRequest:
		e.authRequest(&m)
	case *AuthenticationRequest:
		e.ok = m != nil
		if e.ok {
			e.authRequest(m)
		}
	case RegistrationRequest:
		e.regRequest(&m)
	case *RegistrationRequest:
		e.ok = m != nil
		if e.ok {
			e.regRequest(m)
		}
	default:
		e.ok = false
	}
	s := ""
	if e.ok {
		s = string(e.b)
	}
	if cap(e.b) <= 64<<10 {
		*bp = e.b
		scratch.Put(bp)
	}
	return s, e.ok
}
