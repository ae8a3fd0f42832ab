package flows_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/authphone/authphone/flows"
)

func TestConfirmNumber(t *testing.T) {
	offered := []int{17, 42, 88}
	start := func() (*flows.Flow, chan int, chan error) {
		var r flows.Runner
		got, errc := make(chan int, 1), make(chan error, 1)
		f, err := r.Start(context.Background(), flows.Login, nil, func(ctx context.Context, s *flows.Step) error {
			n, err := s.ConfirmNumber(ctx, "", nil, offered)
			got <- n
			errc <- err
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return f, got, errc
	}

	// The update shows the choices; a number not offered is refused and
	// the flow keeps waiting; an offered one answers.
	f, got, errc := start()
	var shown []int
	last := flows.Drive(f, func(f *flows.Flow, u flows.Update) {
		shown = u.CurrentInteraction.Numbers
		if err := f.ConfirmNumber(50); !errors.Is(err, flows.ErrNotOffered) {
			t.Errorf("not offered: %v", err)
		}
		if err := f.ConfirmNumber(42); err != nil {
			t.Error(err)
		}
	}, nil)
	if !slices.Equal(shown, offered) || <-got != 42 || <-errc != nil || last.State != flows.Done {
		t.Fatalf("shown %v, last %v", shown, last)
	}

	// A plain yes is not enough; a no declines.
	for _, tc := range []struct {
		yes  bool
		want error
	}{{true, flows.ErrNumberRequired}, {false, flows.ErrDeclined}} {
		f, _, errc := start()
		flows.Drive(f, func(f *flows.Flow, u flows.Update) { _ = f.Confirm(tc.yes) }, nil)
		if err := <-errc; !errors.Is(err, tc.want) {
			t.Errorf("Confirm(%v): %v, want %v", tc.yes, err, tc.want)
		}
	}

	// The scripted user picks its Number, and gives up on one not offered.
	f, got, _ = start()
	flows.Drive(f, flows.Answers{Confirm: true, Number: 88}.Answer, nil)
	if n := <-got; n != 88 {
		t.Fatalf("scripted pick %d", n)
	}
	f, _, errc = start()
	last = flows.Drive(f, flows.Answers{Confirm: true, Number: 11}.Answer, nil)
	if err := <-errc; !errors.Is(err, flows.ErrNotOffered) || !errors.Is(last.Err, flows.ErrNotOffered) {
		t.Fatalf("not offered: %v / %v", err, last.Err)
	}
}
