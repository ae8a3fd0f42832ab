package cloudapi

import (
	"encoding/json"
	"testing"
)

// FuzzParseChaos: any spec is read or refused without a panic; what is
// read is in range and survives String and the wire form.
func FuzzParseChaos(f *testing.F) {
	for _, s := range []string{"off", "", "latency=200ms,error-rate=0.05,drop-push=0.1", "error-rate=1", "latency=-1s", "drop-push=NaN", "x=1,,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		c, err := ParseChaos(spec)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("%q parsed out of range: %v", spec, err)
		}
		if back, err := ParseChaos(c.String()); err != nil || back != c {
			t.Fatalf("%q: String %q reads back as %+v, %v", spec, c.String(), back, err)
		}
		b, _ := json.Marshal(c)
		var w Chaos
		if err := json.Unmarshal(b, &w); err != nil || w != c {
			t.Fatalf("%q: wire form %s reads back as %+v, %v", spec, b, w, err)
		}
	})
}
