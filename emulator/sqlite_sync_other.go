//go:build !linux

package emulator

import "os"

// fdatasync makes f's writes durable: fsync where there is no fdatasync.
func fdatasync(f *os.File) error { return f.Sync() }
