package flows

// Answerer answers a flow that waits for input, by calling the flow's
// Confirm, InputSecondFactor or Cancel.
type Answerer func(f *Flow, u Update)

// Drive reads f's updates to the end, passing each to onUpdate (if not nil)
// and each WAIT_FOR_INPUT to answer; it returns the final update.
//
// A flow nobody has read yet runs in Drive's own goroutine: its updates
// and answers need no hand-off between goroutines.
func Drive(f *Flow, answer Answerer, onUpdate func(Update)) Update {
	var last Update
	deliver := func(u Update) {
		last = u
		if onUpdate != nil {
			onUpdate(u)
		}
		if u.State == WaitForInput {
			answer(f, u)
		}
	}
	if f.claim(deliver) {
		f.run(deliver)
		return last
	}
	for u := range f.Updates() {
		last = u
		if onUpdate != nil {
			onUpdate(u)
		}
		if u.State == WaitForInput {
			answer(f, u)
		}
	}
	return last
}

// Answers is a scripted user, for the CLI and tests: it confirms or declines,
// enters PIN to verify and NewPIN to set, and gives up (cancels) after a
// wrong PIN unless Retry is set. Where the second factor is a biometric it
// answers with one if Biometric is set, and gives up otherwise.
type Answers struct {
	Confirm bool
	// Number is picked at a number-matching CONFIRM.
	Number    int
	PIN       string
	NewPIN    string
	Retry     bool
	Biometric bool
}

// Answer implements Answerer.
func (a Answers) Answer(f *Flow, u Update) {
	if u.CurrentInteraction.Details["method"] == MethodBiometric {
		if a.Biometric {
			_ = f.Biometric()
		} else {
			f.CancelWith(ErrBiometricRequired)
		}
		return
	}
	switch u.CurrentInteraction.Type {
	case Confirm, ConfirmTransaction:
		if a.Confirm && len(u.CurrentInteraction.Numbers) > 0 {
			if err := f.ConfirmNumber(a.Number); err != nil {
				f.CancelWith(err)
			}
			return
		}
		_ = f.Confirm(a.Confirm)
	case VerifySecondFactor:
		if u.PreviousResult == PINFail && !a.Retry {
			f.CancelWith(ErrWrongPIN)
			return
		}
		_ = f.InputSecondFactor(a.PIN)
	case SetSecondFactor:
		_ = f.InputSecondFactor(a.NewPIN)
	}
}
