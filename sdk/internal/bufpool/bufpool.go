// Package bufpool holds the buffers the SDK's HTTP clients read answers
// into. json.Unmarshal copies what it keeps, so a buffer goes back once its
// answer is decoded.
package bufpool

import (
	"bytes"
	"sync"
)

// maxKept is the largest buffer kept for reuse: one that held a large
// answer is left to the garbage collector.
const maxKept = 64 << 10

var pool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Get returns an empty buffer.
func Get() *bytes.Buffer { return pool.Get().(*bytes.Buffer) }

// Put gives b back for reuse; b must not be used afterwards.
func Put(b *bytes.Buffer) {
	if b.Cap() > maxKept {
		return
	}
	b.Reset()
	pool.Put(b)
}
