package backend

import (
	"reflect"
	"strings"
	"testing"
)

func TestReadSSE(t *testing.T) {
	in := ": hello\r\nid: 1\r\ndata: {\"a\":1}\r\n\r\nid: 2\nevent: x\ndata: line1\ndata:line2\n\n" +
		"data: no blank line at the end is not dispatched\rid: 3\r\rdata: \n\n"
	var got []sseEvent
	if err := readSSE(strings.NewReader(in), func(e sseEvent) bool { got = append(got, e); return true }); err != nil {
		t.Fatal(err)
	}
	want := []sseEvent{{ID: "1", Data: `{"a":1}`}, {ID: "2", Type: "x", Data: "line1\nline2"},
		{ID: "3", Data: "no blank line at the end is not dispatched"}, {ID: "3", Data: ""}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
	if err := readSSE(strings.NewReader("data: "+strings.Repeat("x", maxSSELine+1)+"\n\n"), func(sseEvent) bool { return true }); err != errSSELine {
		t.Fatalf("long line: %v", err)
	}
	n := 0
	_ = readSSE(strings.NewReader("data: 1\n\ndata: 2\n\n"), func(sseEvent) bool { n++; return false })
	if n != 1 {
		t.Fatalf("fn returning false did not stop the read: %d calls", n)
	}
}

// FuzzReadSSE: any stream parses without panicking, and an event's data
// never holds a line break it was not given as a data line boundary.
func FuzzReadSSE(f *testing.F) {
	f.Add("id: 1\ndata: {}\n\n")
	f.Add(": c\r\ndata: a\r\ndata: b\r\n\r\n")
	f.Add("data\n\nid\x00: x\rdata:\r\r")
	f.Fuzz(func(t *testing.T, s string) {
		_ = readSSE(strings.NewReader(s), func(e sseEvent) bool {
			if strings.ContainsAny(e.Data, "\r") || strings.ContainsAny(e.ID, "\r\n\x00") {
				t.Fatalf("event %#v from %q", e, s)
			}
			return true
		})
	})
}
