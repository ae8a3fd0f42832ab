package tlv_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/authphone/authphone/sdk/tlv"
)

func TestRoundTrip(t *testing.T) {
	inner := tlv.Append(nil, tlv.TagAAID, []byte("F1D0#0001"))
	inner = tlv.Append(inner, tlv.TagCounters, []byte{1, 0, 0, 0})
	b := tlv.Append(nil, tlv.TagSignedData, inner)
	el, err := tlv.ParseOne(b, tlv.TagSignedData)
	if err != nil {
		t.Fatal(err)
	}
	if !el.Tag.Composite() || !bytes.Equal(el.Raw, b) {
		t.Fatal("raw/composite wrong")
	}
	els, err := tlv.Parse(el.Value)
	if err != nil || len(els) != 2 || string(els[0].Value) != "F1D0#0001" {
		t.Fatalf("%v %v", els, err)
	}
	if tlv.TagAAID.Composite() {
		t.Fatal("AAID is not composite")
	}
}

func TestMalformed(t *testing.T) {
	good := tlv.Append(nil, tlv.TagAAID, []byte("F1D0#0001"))
	cases := map[string][]byte{
		"short header":  good[:3],
		"short value":   good[:len(good)-1],
		"trailing byte": append(good, 0),
	}
	for name, b := range cases {
		if _, err := tlv.Parse(b); !errors.Is(err, tlv.ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	if _, err := tlv.ParseOne(good, tlv.TagKRD); !errors.Is(err, tlv.ErrMalformed) {
		t.Errorf("wrong tag accepted: %v", err)
	}
	if _, err := tlv.Fields([]tlv.Element{{Tag: tlv.TagAAID}, {Tag: tlv.TagAAID}}); err == nil {
		t.Error("duplicate tag accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(tlv.Append(nil, tlv.TagKRD, tlv.Append(nil, tlv.TagAAID, []byte("F1D0#0001"))))
	f.Add([]byte{0x01, 0x3e, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		els, err := tlv.Parse(b)
		if err != nil {
			return
		}
		var re []byte
		for _, e := range els {
			re = tlv.Append(re, e.Tag, e.Value)
		}
		if !bytes.Equal(re, b) {
			t.Fatalf("re-encoding differs: %x vs %x", re, b)
		}
	})
}
