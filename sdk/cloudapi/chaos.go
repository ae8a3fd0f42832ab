package cloudapi

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// PathAdminChaos reads (GET) and sets (PUT) the emulator's chaos (ours,
// access key).
const PathAdminChaos = "/api/v1/admin/chaos"

// MaxChaosLatency is the most latency chaos may add to an answer.
const MaxChaosLatency = MaxWait

// Chaos makes the emulator behave like a flaky cloud, so that a backend's
// retries and timeouts can be tested: Latency is added before every answer,
// a share ErrorRate of requests is answered 503 (with Retry-After, and
// nothing done), and a share DropPush of push messages never reaches the
// phone's inbox. The zero value is a well-behaved cloud. On the wire:
// {"latency":"200ms","errorRate":0.05,"dropPush":0.1}.
type Chaos struct {
	Latency   time.Duration
	ErrorRate float64
	DropPush  float64
}

// ChaosNames lists the settings ParseChaos knows, as --help shows them.
const ChaosNames = "latency=DUR,error-rate=0..1,drop-push=0..1 (or off)"

// On reports whether c changes anything.
func (c Chaos) On() bool { return c != Chaos{} }

// Validate checks the ranges: latency 0 to MaxChaosLatency, rates 0 to 1.
func (c Chaos) Validate() error {
	switch {
	case c.Latency < 0 || c.Latency > MaxChaosLatency:
		return fmt.Errorf("chaos latency %s is out of range: use 0 to %s", c.Latency, MaxChaosLatency)
	case !(c.ErrorRate >= 0 && c.ErrorRate <= 1):
		return fmt.Errorf("chaos error-rate %v is out of range: use a share from 0 to 1, such as 0.05", c.ErrorRate)
	case !(c.DropPush >= 0 && c.DropPush <= 1):
		return fmt.Errorf("chaos drop-push %v is out of range: use a share from 0 to 1, such as 0.1", c.DropPush)
	}
	return nil
}

// String renders c as ParseChaos reads it ("off" for none).
func (c Chaos) String() string {
	var parts []string
	if c.Latency != 0 {
		parts = append(parts, "latency="+c.Latency.String())
	}
	if c.ErrorRate != 0 {
		parts = append(parts, "error-rate="+strconv.FormatFloat(c.ErrorRate, 'g', -1, 64))
	}
	if c.DropPush != 0 {
		parts = append(parts, "drop-push="+strconv.FormatFloat(c.DropPush, 'g', -1, 64))
	}
	if len(parts) == 0 {
		return "off"
	}
	return strings.Join(parts, ",")
}

// ParseChaos reads "latency=200ms,error-rate=0.05,drop-push=0.1" (any of
// them, in any order) or "off".
func ParseChaos(spec string) (Chaos, error) {
	var c Chaos
	spec = strings.TrimSpace(spec)
	if spec == "" || spec == "off" {
		return c, nil
	}
	for _, item := range strings.Split(spec, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return Chaos{}, fmt.Errorf("chaos %q: want name=value, one of %s", item, ChaosNames)
		}
		var err error
		switch name {
		case "latency":
			c.Latency, err = time.ParseDuration(val)
		case "error-rate":
			c.ErrorRate, err = strconv.ParseFloat(val, 64)
		case "drop-push":
			c.DropPush, err = strconv.ParseFloat(val, 64)
		default:
			return Chaos{}, fmt.Errorf("unknown chaos setting %q: choose from %s", name, ChaosNames)
		}
		if err != nil {
			return Chaos{}, fmt.Errorf("chaos %s=%q is not a %s", name, val, map[bool]string{true: "duration such as 200ms", false: "number such as 0.05"}[name == "latency"])
		}
	}
	return c, c.Validate()
}

type chaosJSON struct {
	Latency   string  `json:"latency"`
	ErrorRate float64 `json:"errorRate"`
	DropPush  float64 `json:"dropPush"`
}

// MarshalJSON renders the wire form.
func (c Chaos) MarshalJSON() ([]byte, error) {
	return json.Marshal(chaosJSON{Latency: c.Latency.String(), ErrorRate: c.ErrorRate, DropPush: c.DropPush})
}

// UnmarshalJSON reads the wire form; a missing member is zero.
func (c *Chaos) UnmarshalJSON(b []byte) error {
	var j chaosJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	out := Chaos{ErrorRate: j.ErrorRate, DropPush: j.DropPush}
	if j.Latency != "" {
		d, err := time.ParseDuration(j.Latency)
		if err != nil {
			return fmt.Errorf("latency %q is not a duration such as 200ms", j.Latency)
		}
		out.Latency = d
	}
	*c = out
	return nil
}
