// Package jsonfast writes and reads the few JSON bodies on the hot path of
// an enrolment and an approval by hand, for types whose shape is fixed.
//
// A Writer writes exactly what encoding/json writes for the values it
// takes (the same field order, omitempty, escaping, times), or gives up:
// a string with a control character or a byte past ASCII, a time
// encoding/json would refuse. A Reader reads exactly the values
// encoding/json would read into a zero value, or gives up: an escape in a
// string, an unknown or repeated key, a null, anything but plain decimal
// integers. Whoever gives up goes to encoding/json, so the answer, or the
// error, is always encoding/json's; the callers' tests compare the two.
package jsonfast

import (
	"bytes"
	"slices"
	"strconv"
	"time"
	"unsafe"
)

// Writer appends JSON to B. OK is false once a value could not be written
// as encoding/json would.
type Writer struct {
	B  []byte
	OK bool
}

// NewWriter returns a Writer appending to b.
func NewWriter(b []byte) Writer { return Writer{B: b, OK: true} }

// Raw appends s as it is (punctuation and keys the caller knows are plain).
func (w *Writer) Raw(s string) { w.B = append(w.B, s...) }

// Byte appends c as it is.
func (w *Writer) Byte(c byte) { w.B = append(w.B, c) }

// String appends s quoted as encoding/json quotes it (HTML-escaped, as
// json.Marshal and json.Encoder do by default).
func (w *Writer) String(s string) {
	w.B = slices.Grow(w.B, len(s)+len(s)/8+2) // room for the quotes and some escapes
	w.B = append(w.B, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plainByte[c] {
			continue
		}
		w.B = append(w.B, s[start:i]...)
		start = i + 1
		switch c {
		case '"', '\\':
			w.B = append(w.B, '\\', c)
		case '<':
			w.B = append(w.B, `\u003c`...)
		case '>':
			w.B = append(w.B, `\u003e`...)
		case '&':
			w.B = append(w.B, `\u0026`...)
		default: // control characters and UTF-8: encoding/json's own rules
			w.OK = false
			return
		}
	}
	w.B = append(w.B, s[start:]...)
	w.B = append(w.B, '"')
}

// plainByte marks the bytes String copies as they are: printable ASCII
// but for the quote, the backslash and <, >, &.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// Int appends n.
func (w *Writer) Int(n int64) { w.B = strconv.AppendInt(w.B, n, 10) }

// Bool appends b.
func (w *Writer) Bool(b bool) {
	if b {
		w.B = append(w.B, "true"...)
	} else {
		w.B = append(w.B, "false"...)
	}
}

// Time appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds, quoted); a time it refuses (a year past 9999, an offset
// with seconds) is not written.
func (w *Writer) Time(t time.Time) {
	w.B = append(w.B, '"')
	var err error
	if w.B, err = t.AppendText(w.B); err != nil {
		w.OK = false
		return
	}
	w.B = append(w.B, '"')
}

// Reader reads JSON from B. OK is false once something was not read as
// encoding/json would read it; the caller then decodes with encoding/json.
type Reader struct {
	B  []byte
	i  int
	OK bool
}

// NewReader returns a Reader of b.
func NewReader(b []byte) Reader { return Reader{B: b, OK: true} }

func (r *Reader) space() {
	for r.i < len(r.B) {
		switch r.B[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// Fail marks the read failed.
func (r *Reader) Fail() { r.OK = false }

// Object reads an object, calling field for each key (its bytes, valid
// until the next read): field reads the value and returns the key's index
// (under 64; Untracked for a key that may repeat), or -1 for a key it
// does not know, which fails the read. A key must come at most once.
func (r *Reader) Object(field func(key []byte) int) {
	r.space()
	if !r.OK || r.i >= len(r.B) || r.B[r.i] != '{' {
		r.OK = false
		return
	}
	r.i++
	r.space()
	if r.i < len(r.B) && r.B[r.i] == '}' {
		r.i++
		return
	}
	var seen uint64
	for r.OK {
		key, ok := r.plain()
		if !ok {
			r.OK = false
			return
		}
		r.space()
		if r.i >= len(r.B) || r.B[r.i] != ':' {
			r.OK = false
			return
		}
		r.i++
		n := field(key)
		if n < 0 || (n < 64 && seen&(1<<n) != 0) {
			r.OK = false
			return
		}
		if n < 64 {
			seen |= 1 << n
		}
		r.space()
		if r.i >= len(r.B) {
			r.OK = false
			return
		}
		switch r.B[r.i] {
		case ',':
			r.i++
			r.space()
		case '}':
			r.i++
			return
		default:
			r.OK = false
			return
		}
	}
}

// Array reads an array, calling elem for each element, which reads it.
func (r *Reader) Array(elem func()) {
	r.space()
	if !r.OK || r.i >= len(r.B) || r.B[r.i] != '[' {
		r.OK = false
		return
	}
	r.i++
	r.space()
	if r.i < len(r.B) && r.B[r.i] == ']' {
		r.i++
		return
	}
	for r.OK {
		elem()
		r.space()
		if !r.OK || r.i >= len(r.B) {
			r.OK = false
			return
		}
		switch r.B[r.i] {
		case ',':
			r.i++
		case ']':
			r.i++
			return
		default:
			r.OK = false
			return
		}
	}
}

// plain reads a string without escapes, control characters or bytes past
// ASCII, and returns its bytes without the quotes.
func (r *Reader) plain() ([]byte, bool) {
	r.space()
	if r.i >= len(r.B) || r.B[r.i] != '"' {
		return nil, false
	}
	start := r.i + 1
	for j := start; j < len(r.B); j++ {
		c := r.B[j]
		if c == '"' {
			r.i = j + 1
			return r.B[start:j], true
		}
		if c < 0x20 || c >= 0x7f || c == '\\' {
			return nil, false
		}
	}
	return nil, false
}

// String reads a string into *s.
func (r *Reader) String(s *string) {
	b, ok := r.plain()
	if !ok {
		r.OK = false
		return
	}
	*s = string(b)
}

// Text reads a string into *s, taking the escapes of one letter (\" \\ \/
// \b \f \n \r \t); any other (\u), a control character or a byte past
// ASCII fails the read.
func (r *Reader) Text(s *string) {
	r.space()
	if r.i >= len(r.B) || r.B[r.i] != '"' {
		r.OK = false
		return
	}
	start := r.i + 1
	j := start
	escaped := false
	for ; ; j++ {
		if j >= len(r.B) {
			r.OK = false
			return
		}
		c := r.B[j]
		if c == '"' {
			break
		}
		if c < 0x20 || c >= 0x7f {
			r.OK = false
			return
		}
		if c == '\\' {
			escaped = true
			j++ // the escaped byte, checked below
			if j >= len(r.B) {
				r.OK = false
				return
			}
		}
	}
	r.i = j + 1
	if !escaped {
		*s = string(r.B[start:j])
		return
	}
	out := make([]byte, 0, j-start)
	for k := start; k < j; k++ {
		if n := bytes.IndexByte(r.B[k:j], '\\'); n != 0 {
			if n < 0 {
				n = j - k
			}
			out = append(out, r.B[k:k+n]...) // the run up to the next escape
			k += n - 1
			continue
		}
		k++
		switch r.B[k] {
		case '"', '\\', '/':
			out = append(out, r.B[k])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		default:
			r.OK = false
			return
		}
	}
	*s = unsafe.String(unsafe.SliceData(out), len(out)) // out is not kept: the string owns it
}

// Time reads a time into *t as time.Time's UnmarshalJSON does.
func (r *Reader) Time(t *time.Time) {
	r.space()
	start := r.i
	if _, ok := r.plain(); !ok {
		r.OK = false
		return
	}
	if err := t.UnmarshalJSON(r.B[start:r.i]); err != nil {
		r.OK = false
	}
}

// Int reads a plain decimal integer (an optional minus, no leading zero,
// no fraction or exponent) that fits in 64 bits into *n.
func (r *Reader) Int(n *int64) {
	r.space()
	j := r.i
	if j < len(r.B) && r.B[j] == '-' {
		j++
	}
	d := j
	for j < len(r.B) && r.B[j] >= '0' && r.B[j] <= '9' {
		j++
	}
	if j == d || (r.B[d] == '0' && j > d+1) {
		r.OK = false
		return
	}
	if j < len(r.B) {
		switch r.B[j] {
		case '.', 'e', 'E':
			r.OK = false
			return
		}
	}
	v, err := strconv.ParseInt(string(r.B[r.i:j]), 10, 64)
	if err != nil {
		r.OK = false
		return
	}
	*n, r.i = v, j
}

// Bool reads true or false into *b.
func (r *Reader) Bool(b *bool) {
	r.space()
	switch {
	case len(r.B)-r.i >= 4 && string(r.B[r.i:r.i+4]) == "true":
		*b, r.i = true, r.i+4
	case len(r.B)-r.i >= 5 && string(r.B[r.i:r.i+5]) == "false":
		*b, r.i = false, r.i+5
	default:
		r.OK = false
	}
}

// Untracked is what an Object field func returns for a key it takes any
// number of times.
const Untracked = 64

// Raw reads one value and returns its bytes as they are (for a
// json.RawMessage): objects, arrays, strings without escapes, integers,
// true, false and null, nested at most 16 deep; anything else fails.
func (r *Reader) Raw() []byte {
	r.space()
	start := r.i
	r.skip(0)
	if !r.OK {
		return nil
	}
	return r.B[start:r.i]
}

func (r *Reader) skip(depth int) {
	if depth > 16 || r.i >= len(r.B) {
		r.OK = false
		return
	}
	switch c := r.B[r.i]; {
	case c == '{':
		r.Object(func([]byte) int { r.skip(depth + 1); return Untracked }) // kept as it is, repeats and all
	case c == '[':
		r.Array(func() { r.skip(depth + 1) })
	case c == '"':
		if _, ok := r.plain(); !ok {
			r.OK = false
		}
	case c == '-' || (c >= '0' && c <= '9'):
		var n int64
		r.Int(&n)
	case c == 't' || c == 'f':
		var b bool
		r.Bool(&b)
	case len(r.B)-r.i >= 4 && string(r.B[r.i:r.i+4]) == "null":
		r.i += 4
	default:
		r.OK = false
	}
}

// End checks that nothing but white space follows.
func (r *Reader) End() {
	r.space()
	if r.i != len(r.B) {
		r.OK = false
	}
}
