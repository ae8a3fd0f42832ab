package emulator

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// runChild serves an emulator on the SQLite file db (at
// $AUTHPHONE_TEST_CHILD_ADDR, else a free port) until it is killed:
// the durability tests run the test binary this way, to kill -9 it and to
// limit its file sizes. It prints the URL on a line once listening. On
// SIGUSR1 it caps the size of files it writes (RLIMIT_FSIZE) at the size
// its database files have now, so the next write that grows one fails
// (EFBIG, as on a full disk) and prints "limited".
func runChild(db string) int {
	signal.Ignore(syscall.SIGXFSZ) // a write past the limit fails instead of killing
	store, err := OpenSQLite(db)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := New(WithAccessKey("test-key"), WithStore(store), WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	addr := os.Getenv("AUTHPHONE_TEST_CHILD_ADDR")
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if err := s.Start(addr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(s.URL())
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	for {
		select {
		case <-usr1:
			var lim syscall.Rlimit
			if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			var size int64
			for _, f := range []string{db, db + "-wal"} {
				if fi, err := os.Stat(f); err == nil {
					size = max(size, fi.Size())
				}
			}
			lim.Cur = uint64(size)
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			fmt.Println("limited")
		case <-term:
			_ = s.Close(context.Background())
			_ = store.Close()
			return 0
		}
	}
}
