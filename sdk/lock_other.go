//go:build !unix

package sdk

import "os"

// lockFile is a no-op where flock does not exist: one process per profile.
func lockFile(*os.File) error { return nil }
