package backend

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// maxSSELine is the longest line a stream may send.
const maxSSELine = 1 << 20

// errSSELine is a stream line over maxSSELine.
var errSSELine = errors.New("the event stream sent a line over 1 MiB")

// sseEvent is one dispatched Server-Sent Event.
type sseEvent struct {
	ID, Type, Data string
}

// readSSE reads a text/event-stream (WHATWG HTML §9.2.6: lines ending in
// CRLF, LF or CR; comments start with a colon; data lines are joined with
// LF; a blank line dispatches) and calls fn for each event with data, until
// the stream ends (nil), fn returns false (nil) or a read fails.
func readSSE(r io.Reader, fn func(sseEvent) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxSSELine)
	sc.Split(scanSSELines)
	var ev sseEvent
	var data strings.Builder
	hasData := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if hasData {
				ev.Data = data.String()
				if !fn(ev) {
					return nil
				}
			}
			ev.Type, data, hasData = "", strings.Builder{}, false
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		case "event":
			ev.Type = value
		case "id":
			if !strings.ContainsRune(value, 0) {
				ev.ID = value
			}
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return errSSELine
	}
	return sc.Err()
}

// scanSSELines splits at CRLF, LF or CR.
func scanSSELines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\r' {
			if i+1 == len(data) && !atEOF {
				return 0, nil, nil // a LF may follow
			}
			if i+1 < len(data) && data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
		}
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
