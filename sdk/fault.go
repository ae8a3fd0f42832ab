package sdk

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Faults make the phone answer like a broken or cloned authenticator, so a
// test can check that the cloud refuses what it should and that a backend
// copes with a phone that never answers. The zero value is an honest phone.
// They act on the UAF authentication answer (approve, or scan of an
// approval); Skew acts on everything the phone dates.
type Faults struct {
	// BadSignature sends the assertion with its signature corrupted.
	BadSignature bool
	// StaleCounter sends the sign counter this phone sent last again, as a
	// clone of the authenticator would after the original's last login
	// (the account must have signed before).
	StaleCounter bool
	// WrongChallenge signs fcParams with a challenge the cloud never sent.
	WrongChallenge bool
	// Skew puts the phone's clock off by this much (Device-Signature iat,
	// signed timestamps).
	Skew time.Duration
	// DropAnswer builds and counts the answer but never sends it, as if the
	// network lost it: the operation stays pending until it expires.
	DropAnswer bool
	// Slow waits this long before sending the answer.
	Slow time.Duration
}

// FaultNames lists the faults ParseFaults knows, as --help shows them.
const FaultNames = "bad-signature|stale-counter|wrong-challenge|skew=DUR|drop-answer|slow=DUR"

// ErrAnswerDropped ends a flow whose answer the drop-answer fault kept back.
var ErrAnswerDropped = errors.New("the answer was not sent (fault drop-answer)")

// ParseFaults reads faults such as "bad-signature", "skew=2m" or
// "slow=3s,drop-answer"; each spec may hold several, comma-separated.
func ParseFaults(specs ...string) (Faults, error) {
	var f Faults
	for _, spec := range specs {
		for _, item := range strings.Split(spec, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			name, val, hasVal := strings.Cut(item, "=")
			dur := func() (time.Duration, error) {
				d, err := time.ParseDuration(val)
				if !hasVal || err != nil {
					return 0, fmt.Errorf("fault %s needs a duration, such as %s=2m", name, name)
				}
				return d, nil
			}
			var err error
			switch name {
			case "bad-signature":
				f.BadSignature = true
			case "stale-counter":
				f.StaleCounter = true
			case "wrong-challenge":
				f.WrongChallenge = true
			case "drop-answer":
				f.DropAnswer = true
			case "skew":
				f.Skew, err = dur()
			case "slow":
				if f.Slow, err = dur(); err == nil && f.Slow < 0 {
					err = fmt.Errorf("fault slow needs a positive duration, such as slow=3s")
				}
			default:
				return Faults{}, fmt.Errorf("unknown fault %q: choose from %s", item, FaultNames)
			}
			if err != nil {
				return Faults{}, err
			}
			if hasVal && name != "skew" && name != "slow" {
				return Faults{}, fmt.Errorf("fault %s takes no value; choose from %s", name, FaultNames)
			}
		}
	}
	return f, nil
}

// WithFaults makes the phone misbehave as f says (see Faults).
func WithFaults(f Faults) Option { return func(o *options) { o.faults = f } }

// WithSleep replaces how the phone waits (the slow fault), for tests that
// move a fake clock instead of sleeping.
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(o *options) { o.sleep = sleep }
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
