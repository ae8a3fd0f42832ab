// Command authphone is a virtual phone for push authenticators, a client of
// the cloud's backend API, and a local emulator of that cloud.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], newIO())
	stop()
	os.Exit(code)
}
